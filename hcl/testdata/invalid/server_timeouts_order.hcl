server "zeo" {
  listen              = "127.0.0.1:9100"
  commit_timeout      = "1m"
  transaction_timeout = "30s"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

# want: error 4:25 Value out of range
