package ldfake

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// listFilter is a parsed `filter` parameter. All strings are lower-case
// because LD's filter is not case-sensitive.
type listFilter struct {
	tags     []string // every one must be present
	query    string   // substring of key or name
	critical *bool
}

// parseFilter parses LD's `filter` value (already URL-decoded): comma-separated
// field:value pairs with the fields query, tags and critical. Tags are
// '+'-separated; a space is accepted too because a client that forgets to
// escape '+' as %2B has it decoded to a space, and LD's own spec warns about
// exactly that. The audit log keeps the raw query so tests can still catch such
// a client. Unknown fields are rejected so that a client typo fails loudly
// (UNVERIFIED: LD may ignore them).
func parseFilter(raw string) (listFilter, error) {
	var f listFilter
	if raw == "" {
		return f, nil
	}
	for part := range strings.SplitSeq(raw, ",") {
		field, value, ok := strings.Cut(part, ":")
		if !ok {
			return listFilter{}, fmt.Errorf("filter %q is not of the form field:value", part)
		}
		switch field {
		case "tags":
			for tag := range strings.FieldsFuncSeq(value, func(r rune) bool { return r == '+' || r == ' ' }) {
				tag = strings.ToLower(tag)
				if !slices.Contains(f.tags, tag) {
					f.tags = append(f.tags, tag)
				}
			}
		case "query":
			f.query = strings.ToLower(value)
		case "critical":
			var critical bool
			switch strings.ToLower(value) {
			case "true":
				critical = true
			case "false":
			default:
				return listFilter{}, fmt.Errorf("filter critical:%q is not true or false", value)
			}
			f.critical = &critical
		default:
			return listFilter{}, fmt.Errorf("unsupported filter field %q", field)
		}
	}
	slices.Sort(f.tags)
	return f, nil
}

// canonical is a cache key: equal for filters that select the same items.
func (f listFilter) canonical() string {
	critical := ""
	if f.critical != nil {
		critical = strconv.FormatBool(*f.critical)
	}
	return strconv.Quote(strings.Join(f.tags, "+")) + strconv.Quote(f.query) + critical
}

func (f listFilter) matches(r *record, now time.Time) bool {
	if now.Before(r.visibleAt) {
		return false
	}
	if f.critical != nil && r.env.Critical != *f.critical {
		return false
	}
	if f.query != "" && !strings.Contains(r.lowerKey, f.query) && !strings.Contains(r.lowerName, f.query) {
		return false
	}
	return hasAllTags(r.lowerTags, f.tags)
}

type sortField int

const (
	sortCreatedOn sortField = iota + 1
	sortName
	sortCritical
)

type sortKey struct {
	field      sortField
	descending bool
}

// parseSort parses LD's `sort`: comma-separated createdOn, name or critical,
// each optionally prefixed with '-' for descending.
func parseSort(raw string) ([]sortKey, error) {
	if raw == "" {
		return nil, nil
	}
	var keys []sortKey
	for part := range strings.SplitSeq(raw, ",") {
		key := sortKey{}
		name, descending := strings.CutPrefix(part, "-")
		key.descending = descending
		switch name {
		case "createdOn":
			key.field = sortCreatedOn
		case "name":
			key.field = sortName
		case "critical":
			key.field = sortCritical
		default:
			return nil, fmt.Errorf("unsupported sort field %q", part)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func canonicalSort(keys []sortKey) string {
	var b strings.Builder
	for _, k := range keys {
		if k.descending {
			b.WriteByte('-')
		}
		b.WriteByte(byte('0' + k.field))
	}
	return b.String()
}

// compareBy orders two records by keys; 0 leaves the default order
// (createdOn, then key) to the stable sort.
func compareBy(keys []sortKey, a, b *record) int {
	for _, k := range keys {
		c := 0
		switch k.field {
		case sortCreatedOn:
			c = a.env.CreatedOn.Compare(b.env.CreatedOn)
		case sortName:
			c = strings.Compare(a.env.Name, b.env.Name)
		case sortCritical:
			c = compareBool(a.env.Critical, b.env.Critical)
		}
		if k.descending {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// defaultOrder is LD's undocumented default; createdOn then key is stable and
// is what sort=createdOn gives for ties too.
func defaultOrder(a, b *record) int {
	if c := a.env.CreatedOn.Compare(b.env.CreatedOn); c != 0 {
		return c
	}
	return strings.Compare(a.env.Key, b.env.Key)
}

// pageRequest is a parsed list request.
type pageRequest struct {
	limit     int
	offset    int
	filter    listFilter
	sort      []sortKey
	rawFilter string // decoded, as sent; links carry it back
	rawSort   string
}

// parseListQuery parses the list call's query string. limit defaults to
// defaultLimit and is clamped to maxLimit; a limit below 1, a negative offset
// or a non-integer is a 400 (UNVERIFIED: LD may clamp instead).
func parseListQuery(rawQuery string, defaultLimit, maxLimit int) (pageRequest, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return pageRequest{}, fmt.Errorf("parsing query string: %w", err)
	}
	p := pageRequest{limit: defaultLimit, rawFilter: values.Get("filter"), rawSort: values.Get("sort")}
	if values.Has("limit") {
		limit, err := strconv.Atoi(values.Get("limit"))
		if err != nil || limit < 1 {
			return pageRequest{}, fmt.Errorf("limit %q is not a positive integer", values.Get("limit"))
		}
		p.limit = limit
	}
	p.limit = min(p.limit, maxLimit)
	if values.Has("offset") {
		offset, err := strconv.Atoi(values.Get("offset"))
		if err != nil || offset < 0 {
			return pageRequest{}, fmt.Errorf("offset %q is not a non-negative integer", values.Get("offset"))
		}
		p.offset = offset
	}
	if p.filter, err = parseFilter(p.rawFilter); err != nil {
		return pageRequest{}, err
	}
	if p.sort, err = parseSort(p.rawSort); err != nil {
		return pageRequest{}, err
	}
	return p, nil
}

// href is the relative link to the page at offset with the same filter, sort
// and (effective) limit.
func (p pageRequest) href(project string, offset int) string {
	v := url.Values{}
	if p.rawFilter != "" {
		v.Set("filter", p.rawFilter)
	}
	if p.rawSort != "" {
		v.Set("sort", p.rawSort)
	}
	v.Set("limit", strconv.Itoa(p.limit))
	v.Set("offset", strconv.Itoa(offset))
	return environmentsPath(project) + "?" + v.Encode()
}

// pageLinks follows LD's rule: "If those links do not appear, the pages they
// refer to don't exist". first and prev only after the first page, next and
// last only before the last one. Pages step from the requested offset, so a
// client following next never skips or repeats items.
func (p pageRequest) pageLinks(project string, total int) map[string]Link {
	links := map[string]Link{
		"self":   {Href: p.href(project, p.offset), Type: jsonType},
		"parent": {Href: projectPath(project), Type: jsonType},
	}
	if p.offset > 0 {
		prev := max(0, min(p.offset-p.limit, lastOffset(total, p.limit)))
		links["first"] = Link{Href: p.href(project, 0), Type: jsonType}
		links["prev"] = Link{Href: p.href(project, prev), Type: jsonType}
	}
	if p.offset+p.limit < total {
		last := p.offset + (total-1-p.offset)/p.limit*p.limit
		links["next"] = Link{Href: p.href(project, p.offset+p.limit), Type: jsonType}
		links["last"] = Link{Href: p.href(project, last), Type: jsonType}
	}
	return links
}

// lastOffset is the offset of the last non-empty page aligned to limit.
func lastOffset(total, limit int) int {
	if total == 0 {
		return 0
	}
	return (total - 1) / limit * limit
}

// view is a filtered, sorted listing, cached per project so that paging
// through N environments costs O(N) once plus O(limit) per page rather than
// O(N) per page.
type view struct {
	items []*record
	// validUntil is when an environment hidden by ListLag becomes visible
	// and the view goes stale; zero means never.
	validUntil time.Time
}

func (v *view) fresh(now time.Time) bool {
	return v.validUntil.IsZero() || now.Before(v.validUntil)
}

const maxCachedViews = 32

// listView returns the filtered and sorted records of p. Callers hold the
// server lock.
func (p *project) listView(filter listFilter, keys []sortKey, now time.Time) *view {
	cacheKey := filter.canonical() + "|" + canonicalSort(keys)
	if v, ok := p.views[cacheKey]; ok && v.fresh(now) {
		return v
	}
	v := &view{}
	for _, r := range p.ordered {
		if now.Before(r.visibleAt) && (v.validUntil.IsZero() || r.visibleAt.Before(v.validUntil)) {
			v.validUntil = r.visibleAt
		}
		if filter.matches(r, now) {
			v.items = append(v.items, r)
		}
	}
	if len(keys) > 0 {
		slices.SortStableFunc(v.items, func(a, b *record) int { return compareBy(keys, a, b) })
	}
	if len(p.views) >= maxCachedViews {
		clear(p.views)
	}
	p.views[cacheKey] = v
	return v
}
