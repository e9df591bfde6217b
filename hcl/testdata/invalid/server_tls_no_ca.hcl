server "zeo" {
  listen = "127.0.0.1:9100"
  tls {
    cert_file           = "tls/server.pem"
    key_file            = "tls/server-key.pem"
    require_client_cert = true
  }
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }

# want: error 6:27 Missing client_ca_file
