package ldfake_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

// BenchmarkListAllPages walks every page of a tag-filtered listing. ns/op
// per environment should stay flat as n grows tenfold; a quadratic listing
// would grow tenfold too.
func BenchmarkListAllPages(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("envs=%d", n), func(b *testing.B) {
			s := newServer(b, ldfake.Options{})
			for i := range n {
				tags := []string{"other"}
				if i%2 == 0 {
					tags = []string{"ldreaper", "ephemeral"}
				}
				e := ldfake.Environment{Key: fmt.Sprintf("pr-%06d", i), Tags: tags, CreatedOn: epoch.Add(time.Duration(i) * time.Millisecond)}
				if _, err := s.Seed(project, e); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				pages := 0
				for next := envsPath + "?filter=tags:ldreaper%2Bephemeral&sort=createdOn&limit=100"; next != ""; pages++ {
					p := decodePage(b, call(b, s, http.MethodGet, next, readerToken, ""))
					next = p.Links["next"].Href
				}
				if pages != n/2/100 {
					b.Fatalf("%d pages, want %d", pages, n/2/100)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/env")
		})
	}
}

func BenchmarkCreateDelete(b *testing.B) {
	s := newServer(b, ldfake.Options{}, envKeys("base", 10_000)...)
	for b.Loop() {
		if r := call(b, s, http.MethodPost, envsPath, writerToken, createBody("pr-x", "ldreaper")); r.status != http.StatusCreated {
			b.Fatalf("create: %d", r.status)
		}
		if r := call(b, s, http.MethodDelete, envsPath+"/pr-x", writerToken, ""); r.status != http.StatusNoContent {
			b.Fatalf("delete: %d", r.status)
		}
	}
}
