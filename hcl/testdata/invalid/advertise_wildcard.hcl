server "zeo" {
  listen    = "0.0.0.0:9100"
  advertise = "0.0.0.0:9100"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 3:15 Invalid advertise address
