# An example cluster using the custom-mount plugin: carts are spread over
# two shard partitions by the hash of a key, and the archive is mounted
# from the partition its path prefix names. Build the plugin with
# `make plugins`; `zhost plugins examples/custom-mount/cluster.hcl` lists
# it, `zhost validate` checks the mount args against its schemas.

server "zeo" {
  listen = "127.0.0.1:9100"
}

plugin "custom-mount" {
  path = "../../bin/zhost-plugin-custom-mount"
}

storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}

storage "shard0" {
  type = "packless"
  path = "var/shard0"
}

storage "shard1" {
  type = "packless"
  path = "var/shard1"
}

storage "archive" {
  type      = "filestorage"
  path      = "var/Archive.fs"
  read_only = true
}

partition "main"    { storage = storage.main }
partition "shard0"  { storage = storage.shard0 }
partition "shard1"  { storage = storage.shard1 }
partition "archive" { storage = storage.archive }

mount "carts" {
  plugin   = plugin.custom-mount
  function = "by_hash"
  path     = "/carts"
  args     = { key = "carts", partitions = ["shard0", "shard1"], folder = "carts" }
}

mount "archive" {
  plugin   = plugin.custom-mount
  function = "by_prefix"
  path     = "/archive/2026"
  args     = { rules = { "/archive" = "archive" }, default = "main", folder = "2026" }
}

client "app1" { listen = "127.0.0.1:8081" }

balancer "front" {
  listen     = "127.0.0.1:8080"
  public_url = "http://127.0.0.1:8080"
  clients    = [client.app1]
}
