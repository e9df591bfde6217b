machine "db1" { address = "db 1.example.org" }
server "zeo" {
  machine = machine.db1
  listen  = "0.0.0.0:9100"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" {
  machine = machine.db1
  listen  = "0.0.0.0:8081"
}

# want: error 1:27 Invalid host
