server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"

# want: error 2:16 Unclosed configuration block
