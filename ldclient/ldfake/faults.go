package ldfake

import (
	"context"
	"math/rand/v2"
	"time"
)

// Faults makes the fake misbehave the way LD and the network between can.
// Probabilities are in [0,1] and are decided per request by the Server's
// seeded RNG, so a given seed and request order always fails the same way.
// Faults apply only to requests that reached a route, authenticated and passed
// the rate limiter: they model the service behind LD's gateway.
type Faults struct {
	// Error5xxBefore answers 500, 502 or 503 without acting.
	Error5xxBefore float64
	// Error5xxAfter acts (commits a create or delete), then answers 500: the
	// ambiguous outcome a client must resolve with a GET.
	Error5xxAfter float64
	// DropAfter acts, then closes the connection without answering.
	DropAfter float64
	// Drop closes the connection without acting or answering.
	Drop float64
	// Stall waits StallFor (or until the client gives up) before going on.
	Stall    float64
	StallFor time.Duration
	// Latency delays every request, on top of Options.Latency.
	Latency time.Duration
	// NoCodeErrors drops "code" from 400 bodies, as LD really does for some
	// errors ({"message":"Unknown environment key: …"}).
	NoCodeErrors bool
	// HTML502 answers an HTML 502 page like a load balancer would.
	HTML502 float64
	// ListLag hides newly created environments from lists (not from GET)
	// for this long: eventual consistency.
	ListLag time.Duration
	// ShuffleOrder shuffles the items within each list page, because LD
	// documents no default order.
	ShuffleOrder bool
}

// Fault names recorded in AuditEntry.Fault.
const (
	FaultDrop      = "drop"
	FaultDropAfter = "drop-after"
	Fault5xxBefore = "5xx-before"
	Fault5xxAfter  = "5xx-after"
	FaultHTML502   = "html-502"
	FaultStall     = "stall"
	FaultCanceled  = "canceled" // the client went away during a delay
)

// faultDrawsCount is how many random values every request consumes.
const faultDrawsCount = 7

// faultPlan is what the faults decided for one request.
type faultPlan struct {
	drop          bool
	html502       bool
	status5xx     int // 0 for none
	stall         time.Duration
	dropAfter     bool
	error5xxAfter bool
}

// draw decides one request's faults. It always consumes the same number of
// random values, so changing one probability does not reshuffle which
// requests the other faults hit.
func (f Faults) draw(rng *rand.Rand) faultPlan {
	var u [faultDrawsCount]float64
	for i := range u {
		u[i] = rng.Float64()
	}
	plan := faultPlan{
		drop:          u[0] < f.Drop,
		html502:       u[1] < f.HTML502,
		dropAfter:     u[4] < f.DropAfter,
		error5xxAfter: u[5] < f.Error5xxAfter,
	}
	if u[2] < f.Error5xxBefore {
		plan.status5xx = [...]int{500, 502, 503}[int(u[6]*3)]
	}
	if u[3] < f.Stall {
		plan.stall = f.StallFor
	}
	return plan
}

// sleep waits d or until ctx is done. The timer is a real one so that
// testing/synctest's fake clock drives it in tests.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
