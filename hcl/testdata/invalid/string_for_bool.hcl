server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type      = "filestorage"
  path      = "var/Data.fs"
  read_only = "maybe"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 5:15 Incorrect attribute value type
