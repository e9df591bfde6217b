server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
storage "s" {
  type = "packless"
  path = "var/Data.fs/sessions"
}
partition "s" { storage = storage.s }

# want: error 10:10 Storage path overlaps
