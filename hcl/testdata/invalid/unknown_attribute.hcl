server "zeo" {
  listen = "127.0.0.1:9100"
  listn  = "127.0.0.1:9101"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 3:3 Unsupported argument
