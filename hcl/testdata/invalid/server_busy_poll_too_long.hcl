server "zeo" {
  listen    = "127.0.0.1:9100"
  busy_poll = "5ms"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 3:15 Value out of range
