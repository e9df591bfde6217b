machine "db1" { address = "10.0.0.10" }
server "zeo" {
  machine = machine.db9
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

# want: error 3:13 Reference to undeclared machine
