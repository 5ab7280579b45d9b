// Package faultsuite holds ldreaper's fault-injection tests; it has no code
// of its own. Each test runs the real reconciler and LD client (and, for
// SIGTERM, the real binary) against ldfake while LD, Redis or the sources
// misbehave, then judges every run from ldfake's audit and mutation logs:
// zero lost, zero duplicated, zero forbidden and zero unreported actions.
// The definitions are on the checker in invariants_test.go.
package faultsuite
