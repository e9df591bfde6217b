server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
servr "other" { listen = "127.0.0.1:9200" }

# want: error 8:1 Unsupported block type
