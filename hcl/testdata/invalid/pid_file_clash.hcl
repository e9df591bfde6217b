server "zeo" {
  listen   = "127.0.0.1:9100"
  pid_file = "var/zhost.pid"
}
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" {
  listen   = "127.0.0.1:8081"
  pid_file = "var/zhost.pid"
}

# want: error 12:14 Pid file already in use
