machine "db1" { address = "10.0.0.10" }
machine "web1" { address = "10.0.0.11" }
server "zeo" {
  machine = machine.db1
  listen  = "127.0.0.1:9100"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" {
  machine = machine.web1
  listen  = "0.0.0.0:8081"
}

# want: error 5:13 Unreachable server
