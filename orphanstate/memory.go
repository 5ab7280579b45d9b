package orphanstate

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// Memory keeps orphan state in the process, for a daemon without Redis. It
// is lost on restart, which only restarts the grace period: deletes are
// delayed, never hastened.
type Memory struct {
	mu      sync.Mutex
	records map[string]Record
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{records: map[string]Record{}}
}

// Load returns a copy of every record.
func (m *Memory) Load(ctx context.Context) (map[string]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.records), nil
}

// Save applies upsert and remove together; invalid input changes nothing.
func (m *Memory) Save(ctx context.Context, upsert map[string]Record, remove []string) error {
	if err := validateSave(upsert, remove); err != nil {
		return fmt.Errorf("save orphan state in memory: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, r := range upsert {
		m.records[key] = normalize(r)
	}
	for _, key := range remove {
		delete(m.records, key)
	}
	return nil
}
