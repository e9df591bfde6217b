server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
client "app 2" { listen = "127.0.0.1:8082" }

# want: error 8:8 Invalid name
