server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" {
  listen    = "127.0.0.1:8081"
  busy_poll = "-1us"
}

# want: error 9:15 Invalid duration
