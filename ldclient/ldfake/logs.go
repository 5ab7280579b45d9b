package ldfake

import "time"

// AuditEntry is one request as the fake saw it.
type AuditEntry struct {
	Time     time.Time
	Method   string
	Path     string // escaped, as sent
	RawQuery string // as sent, so tests can check how the client escaped it
	// Status is 0 when no response was sent (a dropped connection, or a
	// client that went away during a delay).
	Status int
	// TokenID is the id AddToken returned, empty for unknown tokens.
	TokenID     string
	Route       string // empty when no route matched
	APIVersion  string // LD-API-Version
	UserAgent   string
	ContentType string
	Fault       string // a Fault* name, empty when none struck
}

// MutationOp is the kind of a committed change.
type MutationOp string

// Mutation kinds.
const (
	OpCreate MutationOp = "create"
	OpDelete MutationOp = "delete"
	OpUpdate MutationOp = "update"
)

// Mutation is one committed change made through the API.
type Mutation struct {
	Time    time.Time
	Op      MutationOp
	Project string
	Key     string
	TokenID string
	// ClonedFrom and SourceVersion are the create's source.key and
	// source.version (0 when not given).
	ClonedFrom    string
	SourceVersion int
}
