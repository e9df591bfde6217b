server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
storage "main" {
  type = "packless"
  path = "var/other"
}

# want: error 8:1 Duplicate storage block
