// Command ldreaper-bench measures ldreaper at scale: it runs the real
// reconciler and LD client against ldfake, served on loopback by a child
// process with injected latency and rate budgets, and prints one table of LD
// calls, wall time, the scenario's lower bound computed in the same run,
// their ratio, 429s, plan time and peak memory. It exits 1 when a target is
// missed. See docs/benchmarks.md.
//
// The fake runs in a child process (this binary again, told so by an
// environment variable) so that the peak RSS reported is the reconciler's
// own, not the fake's copy of 100,000 environments.
package main

import (
	"context"
	"os"
)

func main() {
	if os.Getenv(roleEnv) == roleFake {
		os.Exit(serveFake(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
