server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
balancer "front" {
  listen     = "127.0.0.1:8080"
  public_url = "http://127.0.0.1:8080"
  clients    = [client.app1]
  health_check {
    rise = 0
  }
}

# want: error 13:12 Value out of range
