#!/usr/bin/env bash
# Runs every fuzz target of the module for a fixed time each.
#
# `go test -fuzz` accepts one target in one package per run, so targets are
# discovered here rather than listed by hand: a new `func FuzzX` is fuzzed by
# `make test` the moment it is committed, without anyone editing the Makefile.
#
# Usage: scripts/fuzz.sh [fuzztime]   (default 10s; FUZZTIME also works)
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-10s}}
go=${GO:-go}

# Only packages with a fuzz function in a test file are asked for their list:
# `go test -list` compiles the test binary, which is too slow to do for every
# package just to learn it has nothing to fuzz.
mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . \
	| grep -v '/testdata/' | xargs -r -n1 dirname | sort -u)

if [[ ${#dirs[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found"
	exit 0
fi

count=0
for dir in "${dirs[@]}"; do
	mapfile -t targets < <("$go" test -list '^Fuzz' "$dir" | grep -E '^Fuzz' || true)
	for target in "${targets[@]}"; do
		echo "fuzz: $dir $target ($fuzztime)"
		"$go" test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$dir"
		count=$((count + 1))
	done
done
echo "fuzz: $count target(s) passed"
