server "zeo" {
  listen = "127.0.0.1:9100"
  tls {
    cert_file = "tls/server.pem"
    key_file  = "tls/server-key.pem"
  }
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 13:1 Client without TLS
