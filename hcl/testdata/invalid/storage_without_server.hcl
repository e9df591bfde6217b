storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" {
  listen = "127.0.0.1:8081"
  server = "10.0.0.10:9100"
}

# want: error 1:1 No server block
