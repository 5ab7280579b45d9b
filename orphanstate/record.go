// Package orphanstate remembers, across runs, since when and for how many
// consecutive successful runs each owned LD environment has been an orphan
// (owned, but no longer live in its source). The planner uses it to apply
// orphan grace; the store only persists what the planner decided.
package orphanstate

import "time"

// Record is the orphan state of one environment key.
type Record struct {
	// FirstSeen is when the environment was first seen orphaned in the
	// current unbroken streak.
	FirstSeen time.Time
	// Runs counts the consecutive successful runs that saw it orphaned.
	Runs int
}
