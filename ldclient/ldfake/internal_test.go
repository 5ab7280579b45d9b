package ldfake

import (
	"testing"
	"time"
)

// Paging must not rebuild the listing per page: that is what keeps a walk
// through N environments O(N) instead of O(N²/limit).
func TestListViewIsReusedUntilSomethingChanges(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &project{key: "p", byKey: map[string]*record{}, views: map[string]*view{}}
	for _, k := range []string{"a", "b", "c"} {
		p.insert(newRecord(Environment{Key: k, Name: k, Tags: []string{"t"}, CreatedOn: now}, time.Time{}))
	}
	filter, _ := parseFilter("tags:t")
	sortKeys, _ := parseSort("-name")
	first := p.listView(filter, sortKeys, now)
	if again := p.listView(filter, sortKeys, now); again != first {
		t.Error("an unchanged project rebuilt its view")
	}
	lagging := newRecord(Environment{Key: "d", Name: "d", Tags: []string{"t"}, CreatedOn: now}, now.Add(time.Second))
	steps := []struct {
		name   string
		change func() time.Time
		want   int
	}{
		{"insert", func() time.Time { p.insert(lagging); return now }, 3},
		{"lag expires", func() time.Time { return now.Add(time.Second) }, 4},
		{"remove", func() time.Time { p.remove(p.byKey["a"]); return now.Add(time.Second) }, 3},
	}
	prev := first
	for _, st := range steps {
		at := st.change()
		v := p.listView(filter, sortKeys, at)
		if v == prev || len(v.items) != st.want {
			t.Errorf("after %s: reused=%t items=%d, want a rebuilt view of %d", st.name, v == prev, len(v.items), st.want)
		}
		prev = v
	}
}
