# Valid, with warnings: each is listed below and checked exactly.
machine "db1" { address = "10.0.0.10" }
machine "spare" { address = "10.0.0.99" }

server "zeo" {
  machine = machine.db1
  listen  = "0.0.0.0:9100"
}

storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}

storage "sessions" {
  type = "filestorage"
  path = "var/Sessions.fs"
}

storage "spare" {
  type = "packless"
  path = "var/spare"
}

partition "main" { storage = storage.main }
partition "sessiondata" { storage = storage.sessions }

mount "session_data" {
  function = "mount_partition"
  path     = "/session_data"
  args     = { partition = "sessiondata" }
}

sessions {
  container = "/session_data/sessions"
}

client "app1" {
  machine = machine.db1
  listen  = "0.0.0.0:0"
}

client "app2" { listen = "127.0.0.1:8082" }

# want: warning 3:1 Unused machine
# want: warning 20:1 Unused storage
# want: warning 35:15 Sessions in an append-only storage
# want: warning 40:13 Port chosen at start
# want: warning 43:1 Node without a machine
