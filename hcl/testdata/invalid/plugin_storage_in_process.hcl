server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
plugin "custom" {
  path = "bin/custom"
}
storage "c" {
  type       = "custom"
  in_process = true
}
partition "c" { storage = storage.c }

# want: error 13:16 In-process plugin storage
