// Command stepevents migrates a stepevents database, validates and applies
// task templates, and drives tasks and steps by hand.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
