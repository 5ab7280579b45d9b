// Package ldfake is an in-process fake of LaunchDarkly's environments API
// (REST API v2), faithful enough that the real ldclient and the ldreaper binary
// can run against it: tokens and roles, LD's list paging, filtering and sorting,
// create/get/patch/delete with LD's validation rules and error bodies, per-route
// and global rate limits with LD's headers, and seeded fault injection (5xx,
// dropped connections, stalls, HTML error pages, eventual consistency).
//
// It is held to LD's OpenAPI spec by ldclient's contract test. Where LD's real
// behaviour is not documented, the choice made here is marked UNVERIFIED.
//
// The package imports nothing test-only, so `ldreaper demo` can serve it.
package ldfake
