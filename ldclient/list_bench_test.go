package ldclient_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

// BenchmarkListEnvironments pages through a tag-filtered listing with the
// real client against ldfake on loopback, without injected latency: what is
// left is the pager's own cost per page (request, decode, dedupe) plus the
// fake's. ns/env should stay flat as n grows tenfold.
func BenchmarkListEnvironments(b *testing.B) {
	const token = "api-bench-list-token"
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("envs=%d", n), func(b *testing.B) {
			fake := ldfake.New(ldfake.Options{})
			fake.AddToken(token, ldfake.RoleReader)
			fake.AddProject("p")
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range n {
				e := ldfake.Environment{Key: fmt.Sprintf("pr-%06d", i), Tags: []string{"ldreaper", "ldreaper-src.previews"}, CreatedOn: start.Add(time.Duration(i) * time.Millisecond)}
				if _, err := fake.Seed("p", e); err != nil {
					b.Fatal(err)
				}
			}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			c, err := ldclient.New(ldclient.Options{BaseURL: srv.URL, Token: token})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				envs, err := c.ListEnvironments(b.Context(), "p", ldclient.ListFilter{Tags: []string{"ldreaper"}})
				if err != nil {
					b.Fatal(err)
				}
				if len(envs) != n {
					b.Fatalf("listed %d environments, want %d", len(envs), n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/env")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64((n+ldclient.MaxPageSize-1)/ldclient.MaxPageSize), "ns/page")
		})
	}
}
