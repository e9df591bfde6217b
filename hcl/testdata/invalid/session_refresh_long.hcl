server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
storage "sessions" {
  type = "packless"
  path = "var/sessions"
}
partition "sessiondata" { storage = storage.sessions }
mount "session_data" {
  function = "mount_partition"
  path     = "/session_data"
  args     = { partition = "sessiondata", folder = "session_data" }
}
sessions {
  container = "/session_data/sessions"
  timeout   = "20s"
  refresh   = "30s"
}

# want: error 21:15 Value out of range
