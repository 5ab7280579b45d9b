// Package sources lists the live ephemeral environments that ldreaper keeps LD
// environments for. Each source type lives in its own file and implements Source.
//
// A source must never return a silently short list: anything that may have cut
// the list short (an error, a truncated page, a timeout) either returns an error
// or a Snapshot with Complete = false, because the reconciler deletes the LD
// environments of items it does not see.
package sources

import (
	"context"
	"time"
)

// Env is one live ephemeral environment as a source sees it.
type Env struct {
	// Name is the identity in the source: a branch, a PR number, a namespace.
	Name string
	// Attrs are template inputs: "branch", "pr", "namespace", "url", labels…
	Attrs map[string]string
	// CreatedAt is zero when the source does not know it.
	CreatedAt time.Time
}

// Snapshot is what one List call saw.
type Snapshot struct {
	// Source is the configured source name.
	Source string
	Items  []Env
	// Complete is false when the list may be partial: an error, a truncated
	// page, a timeout. The reconciler deletes nothing on behalf of an
	// incomplete snapshot.
	Complete bool
}

// Source lists what is live. List is called once per run and must re-read its
// backing store each time.
type Source interface {
	Name() string
	List(ctx context.Context) (Snapshot, error)
}
