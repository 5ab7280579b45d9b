package orphanstate

import (
	"errors"
	"fmt"
	"time"
)

// normalize gives both stores the same view of a record: FirstSeen at
// millisecond precision in UTC, the resolution Redis keeps. Without it the
// in-memory store would remember nanoseconds a restarted --once run with
// Redis could not, and the two would disagree on when grace ends.
func normalize(r Record) Record {
	return Record{FirstSeen: time.UnixMilli(r.FirstSeen.UnixMilli()).UTC(), Runs: r.Runs}
}

// validateSave rejects input that either store would have to guess about:
// an empty key, a negative run count, or a key that is both upserted and
// removed in one Save.
func validateSave(upsert map[string]Record, remove []string) error {
	var errs []error
	for key, r := range upsert {
		if key == "" {
			errs = append(errs, errors.New("upsert of an empty environment key"))
		}
		if r.Runs < 0 {
			errs = append(errs, fmt.Errorf("upsert %q: negative run count %d", key, r.Runs))
		}
	}
	for _, key := range remove {
		if key == "" {
			errs = append(errs, errors.New("removal of an empty environment key"))
		}
		if _, ok := upsert[key]; ok {
			errs = append(errs, fmt.Errorf("environment key %q is both upserted and removed", key))
		}
	}
	return errors.Join(errs...)
}
