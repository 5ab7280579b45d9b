package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/leader"
	"github.com/ldreaper/ldreaper/orphanstate"
	"github.com/ldreaper/ldreaper/reconciler"
	"github.com/ldreaper/ldreaper/reconciler/keys"
	"github.com/ldreaper/ldreaper/sources"
)

// app is every component of a running ldreaper, built in one place.
type app struct {
	cfg     Config
	ld      *ldclient.Client
	sources []reconciler.SourceSpec
	rec     *reconciler.Reconciler
	redis   *redis.Client
	elector *leader.Elector
	log     zerolog.Logger
}

// build wires the components from a validated config. It reads the token
// but makes no network call.
func build(_ context.Context, cfg Config, getenv func(string) string, log zerolog.Logger) (*app, error) {
	token, err := cfg.token(getenv)
	if err != nil {
		return nil, err
	}
	return buildWithToken(cfg, token, getenv, log, nil, nil)
}

func buildWithToken(cfg Config, token string, getenv func(string) string, log zerolog.Logger, httpClient *http.Client, observe func(ldclient.RequestRecord)) (*app, error) {
	ld := cfg.LaunchDarkly
	client, err := ldclient.New(ldclient.Options{
		BaseURL:        ld.BaseURL,
		Token:          token,
		UserAgent:      "launchdarkly-ldreaper-int/" + version,
		HTTPClient:     httpClient,
		RequestTimeout: ld.RequestTimeout,
		MaxRetries:     ld.MaxRetries,
		Headroom:       ld.RateLimitHeadroom,
		Logger:         log.With().Str("component", "ldclient").Logger(),
		Observe:        observe,
	})
	if err != nil {
		return nil, fmt.Errorf("launchdarkly: %w", err)
	}
	a := &app{cfg: cfg, ld: client, log: log}

	defaultKey, err := keys.ParseKey(ld.KeyTemplate)
	if err != nil {
		return nil, fmt.Errorf("launchdarkly.key_template: %w", err)
	}
	defaultName, err := keys.ParseName(ld.NameTemplate)
	if err != nil {
		return nil, fmt.Errorf("launchdarkly.name_template: %w", err)
	}
	for _, sc := range cfg.Sources {
		src, err := sources.New(sc, sources.Deps{BaseDir: cfg.baseDir(), Getenv: getenv, Logger: log.With().Str("source", sc.Name).Logger()})
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", sc.Name, err)
		}
		keyT, nameT := defaultKey, defaultName
		if sc.KeyTemplate != "" || sc.KeyPrefix != "" {
			// The prefix joins the template text rather than the rendered
			// key, so that the template's length cap and key check cover it.
			keyText := cmp.Or(sc.KeyTemplate, ld.KeyTemplate)
			if keyT, err = keys.ParseKey(sc.KeyPrefix + keyText); err != nil {
				return nil, fmt.Errorf("source %q: key_template: %w", sc.Name, err)
			}
		}
		if sc.NameTemplate != "" {
			if nameT, err = keys.ParseName(sc.NameTemplate); err != nil {
				return nil, fmt.Errorf("source %q: name_template: %w", sc.Name, err)
			}
		}
		spec := reconciler.SourceSpec{Source: src, Type: sc.Type, AllowEmpty: sc.AllowEmpty, Render: renderer(keyT, nameT)}
		if d, ok := src.(secretDeliverer); ok && d.DeliversSecrets() {
			spec.Deliverer = d
		}
		a.sources = append(a.sources, spec)
	}

	var store reconciler.OrphanStore = orphanstate.NewMemory()
	if cfg.Redis != nil {
		url, err := cfg.redisURL(getenv)
		if err != nil {
			return nil, err
		}
		ropts, err := redis.ParseURL(url)
		if err != nil {
			// The URL may carry a password: never echo it.
			return nil, fmt.Errorf("redis.url: not a valid redis:// URL")
		}
		ropts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		a.redis = redis.NewClient(ropts)
		stateKey := cfg.Redis.StateKey
		if stateKey == "" {
			stateKey = "ldreaper:orphans:" + ld.Project
		}
		store = orphanstate.NewRedis(a.redis, stateKey)
		a.elector, err = leader.New(a.redis, leader.Options{
			Key:      cfg.Redis.LockKey,
			TTL:      cfg.Redis.LockTTL,
			Identity: identity(),
			Logger:   log.With().Str("component", "leader").Logger(),
		})
		if err != nil {
			a.close()
			return nil, fmt.Errorf("redis: %w", err)
		}
	}

	a.rec = reconciler.New(reconciler.Config{
		Project:            ld.Project,
		SourceEnvironment:  ld.SourceEnvironment,
		Color:              ld.Color,
		ExtraTags:          ld.ExtraTags,
		Concurrency:        cfg.Reconcile.Concurrency,
		MaxMutationsPerRun: cfg.Reconcile.MaxMutationsPerRun,
		SourceTimeout:      cfg.Reconcile.SourceTimeout,
		Plan: reconciler.PlanConfig{
			Policy:             reconciler.Policy(cfg.Reconcile.Policy),
			ManagedTag:         ld.ManagedTag,
			SourceEnvironments: nonEmpty(ld.SourceEnvironment),
			Protected:          cfg.Safety.Protected,
			MaxDeletes:         cfg.Safety.MaxDeletes,
			MaxDeletePercent:   cfg.Safety.MaxDeletePercent,
			PercentMinOwned:    cfg.Safety.PercentMinOwned,
			OrphanGrace:        cfg.Safety.OrphanGrace,
			OrphanMinRuns:      cfg.Safety.OrphanMinRuns,
		},
	}, client, client, a.sources, store, log, time.Now)
	return a, nil
}

func (a *app) close() {
	if a.redis != nil {
		_ = a.redis.Close()
	}
}

// acquireLease takes the leader lock for a --once run that mutates.
func (a *app) acquireLease(ctx context.Context) (*leader.Lease, error) {
	return a.elector.TryAcquire(ctx)
}

// secretDeliverer is a source that can hand its live items their LD
// environment's keys (the kubernetes source with deliver_secret = true).
type secretDeliverer interface {
	reconciler.SecretDeliverer
	DeliversSecrets() bool
}

func renderer(keyT *keys.KeyTemplate, nameT *keys.NameTemplate) reconciler.RenderFunc {
	return func(source string, item sources.Env) (string, string, error) {
		in := keys.Input{Name: item.Name, Source: source, Attrs: item.Attrs, CreatedAt: item.CreatedAt}
		key, err := keyT.Render(in)
		if err != nil {
			return "", "", err
		}
		name, err := nameT.Render(in)
		if err != nil {
			return "", "", err
		}
		return key, name, nil
	}
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// identity names this replica in the lock and in /status.
func identity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}
