server "zeo" {
  listen = "127.0.0.1:9100"
  tls {
    cert_file = "tls/server.pem"
  }
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }

# want: error 3:3 Missing required argument
