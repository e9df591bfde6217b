server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
storage "s" {
  type = "packless"
}
partition "s" { storage = storage.s }

# want: error 8:1 Missing required argument
