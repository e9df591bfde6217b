server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
plugin "builtin" {
  path = "bin/custom"
}

# want: error 8:8 Reserved plugin name
