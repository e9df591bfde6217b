plugin_dir = "plugins"

# want: error 1:1 No nodes
