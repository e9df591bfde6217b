# One app node of a cluster whose server is described elsewhere.
client "app1" {
  listen = "127.0.0.1:8081"
  server = "10.0.0.10:9100"
}
