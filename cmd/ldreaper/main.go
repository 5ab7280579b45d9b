// Command ldreaper keeps LaunchDarkly environments in step with live
// ephemeral environments. See README.md.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
