server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = "main" }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 6:30 Invalid reference
