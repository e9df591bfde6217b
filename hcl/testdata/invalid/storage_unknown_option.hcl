server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
storage "s" {
  type = "packless"
  path = "var/s"
  synk = true
}
partition "s" { storage = storage.s }

# want: error 11:3 Unsupported argument
