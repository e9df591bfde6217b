# The canonical cluster spread over three machines. Every machine runs this
# same file with `zhost run --node NAME multi-machine.hcl`:
#
#   db1  (10.0.0.10): zhost run --node zeo   multi-machine.hcl
#   web1 (10.0.0.11): zhost run --node app1  multi-machine.hcl
#                     zhost run --node front multi-machine.hcl
#   web2 (10.0.0.12): zhost run --node app2  multi-machine.hcl
#
# Nodes listen on every interface of their machine; other nodes reach them
# at the machine's address (their advertised address), which is how the
# clients find the server and the balancer finds the clients.

machine "db1"  { address = "10.0.0.10" }
machine "web1" { address = "10.0.0.11" }
machine "web2" { address = "10.0.0.12" }

server "zeo" {
  machine  = machine.db1
  listen   = "0.0.0.0:9100"          # advertised as 10.0.0.10:9100
  pid_file = "var/server.pid"
  log_file = "var/events.log"

  commit_timeout      = "30s"
  transaction_timeout = "5m"
  max_message_size    = "64MiB"
}

storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
  sync = "group"
}

storage "sessions" {
  type       = "packless"
  path       = "var/sessions"
  cache_size = "32MiB"
}

partition "main"        { storage = storage.main }
partition "sessiondata" { storage = storage.sessions }

mount "session_data" {
  plugin   = "builtin"
  function = "mount_partition"
  path     = "/session_data"
  args     = { partition = "sessiondata", folder = "session_data" }
}

sessions {
  container = "/session_data/sessions"
  timeout   = "20m"
  lifetime  = "12h"
  cookie    = "_zhost_id"
  same_site = "lax"
  secure    = "auto"
}

client "app1" {
  machine    = machine.web1
  listen     = "0.0.0.0:8081"        # advertised as 10.0.0.11:8081
  cache_size = "256MiB"
}

client "app2" {
  machine    = machine.web2
  listen     = "0.0.0.0:8081"        # same port, other machine: no clash
  cache_size = "256MiB"
}

balancer "front" {
  machine    = machine.web1
  listen     = "0.0.0.0:8080"
  public_url = "https://www.example.org"
  clients    = [client.app1, client.app2]
  policy     = "least_conn"

  health_check {
    path     = "/_zhost/health"
    interval = "2s"
    timeout  = "1s"
  }

  trusted_proxies = ["10.0.0.0/8"]
}
