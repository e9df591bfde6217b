# Every block and attribute of the language, set to a non-default value
# where that is possible. TestFullConfig checks what it decodes to.

plugin_dir = "/opt/zhost/plugins"

machine "db1" { address = "10.0.0.10" }
machine "web1" { address = "web1.internal" }

server "zeo" {
  machine               = machine.db1
  listen                = "0.0.0.0:9100"
  advertise             = "db1.internal:9100"
  pid_file              = "run/zeo.pid"
  log_file              = "/var/log/zhost/zeo.log"
  commit_timeout        = "10s"
  transaction_timeout   = "1m"
  invalidation_log_size = 50000
  max_message_size      = "256MiB"
  busy_poll             = "100us"

  tls {
    cert_file           = "tls/server.pem"
    key_file            = "tls/server-key.pem"
    client_ca_file      = "tls/clients-ca.pem"
    require_client_cert = true
  }
}

storage "main" {
  type       = "filestorage"
  path       = "var/Data.fs"
  sync       = "group"
  keep_old   = true
  in_process = true
}

storage "sessions" {
  type         = "packless"
  path         = "var/sessions"
  sync         = false
  cache_size   = "32MiB"
  bloom_bits   = 12
  write_buffer = "1MiB"
}

storage "archive" {
  type      = "filestorage"
  path      = "/srv/archive/Data.fs"
  read_only = true
}

storage "blobs" {
  type   = "custom"
  bucket = "zhost-blobs"
  shards = 4
}

partition "main" { storage = storage.main }
partition "sessiondata" { storage = storage.sessions }
partition "archive" {
  storage   = storage.archive
  read_only = true
}
partition "blobs" { storage = storage.blobs }

plugin "custom" {
  path   = "bin/zhost-plugin-custom"
  sha256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
  args   = ["-v"]
  env    = { GOMAXPROCS = "2" }
  region = "eu"
}

plugin "other" {}

mount "session_data" {
  plugin   = "builtin"
  function = "mount_partition"
  path     = "/session_data"
  args     = { partition = "sessiondata", folder = "session_data" }
}

mount "archive" {
  plugin   = plugin.custom
  function = "mount_readonly"
  path     = "/archive"
  args     = { partition = "archive", depth = 2, tags = ["a", "b"], opts = { x = true } }
}

mount "files" {
  plugin   = "bin/zhost-plugin-files"
  function = "mount_files"
  path     = "/files"
}

sessions {
  container      = "/session_data/sessions"
  timeout        = "30m"
  lifetime       = "12h"
  cookie         = "_app_sid"
  cookie_path    = "/app"
  cookie_domain  = "example.org"
  same_site      = "strict"
  secure         = "always"
  limit          = 100000
  refresh        = "1m"
  sweep_interval = "5m"
  on_add         = "http://127.0.0.1:8081/hooks/added"
  on_delete      = "http://127.0.0.1:8081/hooks/deleted"
}

client "app1" {
  machine         = machine.web1
  listen          = "0.0.0.0:8081"
  advertise       = "10.0.0.11:8081"
  partition       = "main"
  cache_size      = "256MiB"
  connect_timeout = "3s"
  busy_poll       = "20us"
  pid_file        = "run/app1.pid"
  log_file        = "log/app1.log"

  tls {
    ca_file     = "tls/ca.pem"
    cert_file   = "tls/app1.pem"
    key_file    = "tls/app1-key.pem"
    server_name = "zeo.internal"
  }
}

client "app2" {
  machine = machine.web1
  listen  = "0.0.0.0:8082"
  server  = "10.0.0.10:9100"
}

balancer "front" {
  machine              = machine.web1
  listen               = "0.0.0.0:8080"
  advertise            = "10.0.0.11:8080"
  public_url           = "https://www.example.org"
  clients              = [client.app1, client.app2]
  policy               = "least_conn"
  max_conns_per_client = 64
  queue_timeout        = "5s"
  trusted_proxies      = ["10.0.0.0/8", "192.168.1.5"]
  access_log           = "var/access.log"
  drain_timeout        = "10s"
  pid_file             = "run/front.pid"
  log_file             = "log/front.log"

  health_check {
    path     = "/status"
    interval = "2s"
    timeout  = "1s"
    rise     = 1
    fall     = 2
  }
}

plugin_hang_timeout = "5m"
