# The canonical zhost cluster: one storage server with a filestorage main
# database and a packless session database, two app nodes and a balancer,
# all on this machine. `make run` starts it; `zhost validate` checks it.
# Every block and attribute is described in docs/config.md.

server "zeo" {
  listen   = "127.0.0.1:9100"
  pid_file = "var/server.pid"
  log_file = "var/events.log"
}

storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}

storage "sessions" {
  type = "packless"          # LevelDB
  path = "var/sessions"
}

partition "main"        { storage = storage.main }
partition "sessiondata" { storage = storage.sessions }

mount "session_data" {
  plugin   = "builtin"                 # or the name/path of a mount plugin
  function = "mount_partition"         # the function the plugin exports
  path     = "/session_data"           # where it appears in the main tree
  args     = { partition = "sessiondata", folder = "session_data" }
}

sessions {
  container = "/session_data/sessions" # transient container, created if missing
  timeout   = "20m"
  cookie    = "_zhost_id"
}

client "app1" { listen = "127.0.0.1:8081" }
client "app2" { listen = "127.0.0.1:8082" }

balancer "front" {
  listen     = "127.0.0.1:8080"
  public_url = "http://127.0.0.1:8080"
  clients    = [client.app1, client.app2]
}
