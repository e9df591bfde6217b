client "app1" { listen = "127.0.0.1:8081" }

# want: error 1:1 No server to connect to
