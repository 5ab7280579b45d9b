package orphanstate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisHashClient is the part of go-redis the Redis store uses.
type redisHashClient interface {
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	TxPipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// Redis keeps orphan state in one Redis hash per LD project, shared by every
// replica, so grace survives restarts, leader changes and --once runs. Each
// field is an environment key; its value is "<first-seen unix ms>:<runs>".
type Redis struct {
	rdb redisHashClient
	key string
}

// NewRedis returns a store backed by the hash at key, e.g.
// "ldreaper:orphans:<project>".
func NewRedis(rdb redis.UniversalClient, key string) *Redis {
	return &Redis{rdb: rdb, key: key}
}

// Load reads every record. A field that does not decode fails the whole
// load, naming the environment key, so the planner holds deletes instead of
// restarting or inventing a grace period.
func (r *Redis) Load(ctx context.Context) (map[string]Record, error) {
	fields, err := r.rdb.HGetAll(ctx, r.key).Result()
	if err != nil {
		return nil, fmt.Errorf("load orphan state from %q: %w", r.key, err)
	}
	records := make(map[string]Record, len(fields))
	var errs []error
	for _, envKey := range slices.Sorted(maps.Keys(fields)) {
		rec, err := decodeRecord(fields[envKey])
		if err != nil {
			errs = append(errs, fmt.Errorf("environment %q: %w", envKey, err))
			continue
		}
		records[envKey] = rec
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load orphan state from %q: %w", r.key, err)
	}
	return records, nil
}

// Save applies upsert and remove in one MULTI/EXEC transaction, so a
// reader never sees half of a run's changes; invalid input changes nothing.
func (r *Redis) Save(ctx context.Context, upsert map[string]Record, remove []string) error {
	if err := validateSave(upsert, remove); err != nil {
		return fmt.Errorf("save orphan state to %q: %w", r.key, err)
	}
	if len(upsert) == 0 && len(remove) == 0 {
		return nil
	}
	_, err := r.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		if len(upsert) > 0 {
			fieldValues := make([]any, 0, 2*len(upsert))
			for _, envKey := range slices.Sorted(maps.Keys(upsert)) {
				fieldValues = append(fieldValues, envKey, encodeRecord(upsert[envKey]))
			}
			pipe.HSet(ctx, r.key, fieldValues...)
		}
		if len(remove) > 0 {
			pipe.HDel(ctx, r.key, remove...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save orphan state to %q: %w", r.key, err)
	}
	return nil
}

// encodeRecord renders r as "<FirstSeen unix ms>:<Runs>", e.g.
// "1732270000000:3": short, and readable with redis-cli.
func encodeRecord(r Record) string {
	return strconv.FormatInt(r.FirstSeen.UnixMilli(), 10) + ":" + strconv.Itoa(r.Runs)
}

// decodeRecord parses encodeRecord's form strictly: only the exact string
// encodeRecord would produce is accepted (no signs on Runs, no leading
// zeros, no spaces), so corruption is reported rather than half-read.
func decodeRecord(s string) (Record, error) {
	millisText, runsText, ok := strings.Cut(s, ":")
	if !ok {
		return Record{}, fmt.Errorf("malformed orphan record %q: want <unix ms>:<runs>", s)
	}
	millis, err := strconv.ParseInt(millisText, 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("malformed orphan record %q: first-seen time: %w", s, err)
	}
	runs, err := strconv.Atoi(runsText)
	if err != nil {
		return Record{}, fmt.Errorf("malformed orphan record %q: run count: %w", s, err)
	}
	if runs < 0 {
		return Record{}, fmt.Errorf("malformed orphan record %q: negative run count", s)
	}
	r := Record{FirstSeen: time.UnixMilli(millis).UTC(), Runs: runs}
	if encodeRecord(r) != s {
		return Record{}, fmt.Errorf("malformed orphan record %q: not in canonical form", s)
	}
	return r, nil
}
