server "zeo" {
  listen           = "127.0.0.1:9100"
  max_message_size = "2GiB"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 3:22 Value out of range
