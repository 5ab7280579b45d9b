package ldfake

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Role is what a token may do.
type Role int

const (
	// RoleReader may only read; LD's built-in reader role.
	RoleReader Role = iota + 1
	// RoleWriter may also create, update and delete environments.
	RoleWriter
)

func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RoleWriter:
		return "writer"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// Route names, as used by RouteBudgets and AuditEntry.Route. They match the
// names ldclient uses for its pacing and metrics.
const (
	RouteListEnvironments  = "list_environments"
	RouteGetEnvironment    = "get_environment"
	RouteCreateEnvironment = "create_environment"
	RouteDeleteEnvironment = "delete_environment"
	RoutePatchEnvironment  = "patch_environment"
)

// Options configure a Server. The zero value is a usable fake with LD's
// defaults and no rate limits.
type Options struct {
	// MaxPageSize caps limit on list calls (default 100). LD documents no cap
	// for environments; tests set it below what the client asks for.
	MaxPageSize int
	// DefaultLimit is the page size without a limit parameter (default 20,
	// like LD).
	DefaultLimit int
	// RateWindow is the fixed rate-limit window (default 10s, like LD).
	RateWindow time.Duration
	// GlobalBudget is requests per window for the account; 0 is unlimited.
	GlobalBudget int
	// RouteBudget is requests per window per route; 0 is unlimited.
	RouteBudget int
	// RouteBudgets overrides RouteBudget per route name (RouteListEnvironments…).
	RouteBudgets map[string]int
	// RetryAfter adds Retry-After (seconds) to 429s, as LD's IP limits do.
	RetryAfter bool
	// RequireAPIVersion, when set, answers 400 to requests whose
	// LD-API-Version header differs.
	RequireAPIVersion string
	// OmitTotalCount leaves totalCount out of list responses (the spec makes
	// it optional).
	OmitTotalCount bool
	// Now is the clock for createdOn, rate-limit windows, ListLag and logs
	// (default time.Now).
	Now func() time.Time
	// Seed seeds ids, keys, fault decisions and shuffles.
	Seed int64
	// Latency delays every request (ctx-aware); benchmarks use it to model
	// the network.
	Latency time.Duration
	// LogLimit keeps only the newest LogLimit audit and mutation entries, so
	// a long-running demo does not grow without bound; 0 keeps everything.
	LogLimit int
}

// Server is the fake LD API. It is an http.Handler and safe for concurrent use.
type Server struct {
	opts Options

	mu        sync.Mutex
	tokens    map[string]tokenGrant
	projects  map[string]*project
	faults    Faults
	ids       identityGenerator
	faultRNG  *rand.Rand
	limiter   rateLimiter
	audit     []AuditEntry
	mutations []Mutation
}

type tokenGrant struct {
	id   string
	role Role
}

type project struct {
	key   string
	byKey map[string]*record
	// ordered holds the environments in the default order (createdOn, key)
	// so that a listing is a filter pass, not a sort.
	ordered []*record
	views   map[string]*view
}

// record is a stored environment plus what listing needs precomputed.
type record struct {
	env       Environment
	visibleAt time.Time // ListLag: hidden from lists until then
	lowerKey  string
	lowerName string
	lowerTags []string
}

func newRecord(env Environment, visibleAt time.Time) *record {
	r := &record{env: env, visibleAt: visibleAt}
	r.reindex()
	return r
}

func (r *record) reindex() {
	r.lowerKey = strings.ToLower(r.env.Key)
	r.lowerName = strings.ToLower(r.env.Name)
	r.lowerTags = lowerAll(r.env.Tags)
}

func (p *project) insert(r *record) {
	i, _ := slices.BinarySearchFunc(p.ordered, r, defaultOrder)
	p.ordered = slices.Insert(p.ordered, i, r)
	p.byKey[r.env.Key] = r
	clear(p.views)
}

func (p *project) remove(r *record) {
	if i, found := slices.BinarySearchFunc(p.ordered, r, defaultOrder); found {
		p.ordered = slices.Delete(p.ordered, i, i+1)
	}
	delete(p.byKey, r.env.Key)
	clear(p.views)
}

// Errors returned by the methods that bypass the API.
var (
	ErrUnknownProject     = errors.New("unknown project")
	ErrEnvironmentExists  = errors.New("environment already exists")
	ErrInvalidEnvironment = errors.New("invalid environment")
)

// New returns a Server with no tokens and no projects.
func New(o Options) *Server {
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = 100
	}
	if o.DefaultLimit <= 0 {
		o.DefaultLimit = 20
	}
	o.DefaultLimit = min(o.DefaultLimit, o.MaxPageSize)
	if o.RateWindow <= 0 {
		o.RateWindow = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	seed := uint64(o.Seed)
	return &Server{
		opts:     o,
		tokens:   map[string]tokenGrant{},
		projects: map[string]*project{},
		// Separate streams, so that creating an environment does not change
		// which later request a fault hits.
		ids:      identityGenerator{rng: rand.New(rand.NewPCG(seed, 1))},
		faultRNG: rand.New(rand.NewPCG(seed, 2)),
		limiter:  newRateLimiter(o),
	}
}

// AddToken registers token with role and returns the id the audit and
// mutation logs use for it, so tests never need to log the token itself.
// Adding a known token again changes its role and keeps its id.
func (s *Server) AddToken(token string, r Role) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	grant, ok := s.tokens[token]
	if !ok {
		grant.id = fmt.Sprintf("token-%d", len(s.tokens)+1)
	}
	grant.role = r
	s.tokens[token] = grant
	return grant.id
}

// AddProject creates an empty project; adding an existing one is a no-op.
// LD has no empty projects, so tests seed at least one environment.
func (s *Server) AddProject(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[key]; !ok {
		s.projects[key] = &project{key: key, byKey: map[string]*record{}, views: map[string]*view{}}
	}
}

// Seed stores e in project without going through the API, the audit log or
// the mutation log. It fills what e lacks: _id, apiKey, mobileKey, _links,
// tags ([]), name (the key), color (7B42BC), CreatedOn (now) and Version (1).
// Seeded environments are visible to lists at once.
func (s *Server) Seed(projectKey string, e Environment) (Environment, error) {
	if !validKey(e.Key) {
		return Environment{}, fmt.Errorf("seeding environment %q: key: %w", e.Key, ErrInvalidEnvironment)
	}
	if e.Color != "" && !validColor(e.Color) {
		return Environment{}, fmt.Errorf("seeding environment %q: color %q: %w", e.Key, e.Color, ErrInvalidEnvironment)
	}
	if msg := validateTags(e.Tags); msg != "" {
		return Environment{}, fmt.Errorf("seeding environment %q: %s: %w", e.Key, msg, ErrInvalidEnvironment)
	}
	e = e.clone()
	e.Name = cmp.Or(e.Name, e.Key)
	e.Color = cmp.Or(e.Color, "7B42BC")

	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[projectKey]
	if !ok {
		return Environment{}, fmt.Errorf("seeding environment %q in project %q: %w", e.Key, projectKey, ErrUnknownProject)
	}
	if _, exists := p.byKey[e.Key]; exists {
		return Environment{}, fmt.Errorf("seeding environment %q in project %q: %w", e.Key, projectKey, ErrEnvironmentExists)
	}
	if e.CreatedOn.IsZero() {
		e.CreatedOn = s.opts.Now()
	}
	s.ids.fillIdentity(projectKey, &e)
	p.insert(newRecord(e, time.Time{}))
	return e.clone(), nil
}

// Remove deletes an environment behind the API's back (someone deleting it in
// the UI), without logging a mutation. It reports whether it existed.
func (s *Server) Remove(projectKey, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[projectKey]
	if !ok {
		return false
	}
	r, ok := p.byKey[key]
	if ok {
		p.remove(r)
	}
	return ok
}

// Environments returns copies of the project's environments sorted by key,
// including any that ListLag still hides from lists.
func (s *Server) Environments(projectKey string) []Environment {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[projectKey]
	if !ok {
		return nil
	}
	envs := make([]Environment, 0, len(p.ordered))
	for _, r := range p.ordered {
		envs = append(envs, r.env.clone())
	}
	slices.SortFunc(envs, func(a, b Environment) int { return strings.Compare(a.Key, b.Key) })
	return envs
}

// Environment returns a copy of one environment.
func (s *Server) Environment(projectKey, key string) (Environment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.projects[projectKey]; ok {
		if r, ok := p.byKey[key]; ok {
			return r.env.clone(), true
		}
	}
	return Environment{}, false
}

// SetFaults replaces the fault configuration for subsequent requests.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Audit returns a copy of the log of every request, in completion order.
func (s *Server) Audit() []AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(newest(s.audit, s.opts.LogLimit))
}

// Mutations returns a copy of the log of every committed create, update and
// delete, in commit order. A mutation whose response was then replaced by a
// fault (Error5xxAfter, DropAfter) is still here: it happened.
func (s *Server) Mutations() []Mutation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(newest(s.mutations, s.opts.LogLimit))
}

// appendLog appends to a log bounded by limit. It trims only when the log
// reaches twice the limit, which keeps appends amortised O(1).
func appendLog[T any](log []T, limit int, entry T) []T {
	log = append(log, entry)
	if limit > 0 && len(log) >= 2*limit {
		log = append(log[:0], log[len(log)-limit:]...)
	}
	return log
}

func newest[T any](log []T, limit int) []T {
	if limit > 0 && len(log) > limit {
		return log[len(log)-limit:]
	}
	return log
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	entry := AuditEntry{
		Time:        s.opts.Now(),
		Method:      r.Method,
		Path:        r.URL.EscapedPath(),
		RawQuery:    r.URL.RawQuery,
		APIVersion:  r.Header.Get("LD-API-Version"),
		UserAgent:   r.UserAgent(),
		ContentType: r.Header.Get("Content-Type"),
	}
	out := s.handle(r, &entry)
	s.write(w, out, entry)
}
