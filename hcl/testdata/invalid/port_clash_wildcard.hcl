server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
balancer "front" {
  listen     = "0.0.0.0:9100"
  public_url = "http://127.0.0.1:9100"
  clients    = [client.app1]
}

# want: error 9:16 Port clash
