#!/usr/bin/env bash
# The test command (README: "Run every test"). Formatting, vet, the race-enabled
# test suite, and a bounded run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 ./... 2>&1 | tee /tmp/ldreaper-test.$$.log
grep -q '^ok' /tmp/ldreaper-test.$$.log

echo "== fuzz (${FUZZTIME:=10s} per target)"
# Each fuzz target runs alone for a bounded time; crashers fail the job and are
# written under the package's testdata/fuzz for a regression test.
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg"
  done
done
echo "all checks passed"
