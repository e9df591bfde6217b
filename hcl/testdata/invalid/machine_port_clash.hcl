machine "db1" { address = "10.0.0.10" }
machine "db1b" { address = "10.0.0.10" }
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
  machine = machine.db1b
  listen  = "0.0.0.0:9100"
}

# want: error 14:13 Port clash
