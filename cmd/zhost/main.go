// Command zhost runs a clustered object database with shared session state
// from one HCL file. See `zhost --help`.
package main

import (
	"os"

	zhostcmd "github.com/zhostdb/zhost/cmd"
)

func main() {
	os.Exit(zhostcmd.Main(os.Args[1:]))
}
