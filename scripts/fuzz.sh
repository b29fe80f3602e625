#!/usr/bin/env bash
# Runs every fuzz target of the module.
#
# `go test -fuzz` accepts one target in one package per run, so targets are
# discovered here rather than listed by hand: a new `func FuzzX` is fuzzed by
# `make test` the moment it is committed, without anyone editing the Makefile.
#
# Usage: scripts/fuzz.sh [budget]   (FUZZTIME also works)
#
# The default budget is a number of executions per target, not a duration:
# with a duration, Go (1.26) can fail a target with a bare "context deadline
# exceeded" when the deadline races a worker's call in flight
# (golang.org/issue/75804; no crasher, nothing wrong with the code). A count
# has no deadline to race. The counts below are about ten seconds of fuzzing
# each on the 2-core CI machine. An explicit budget (e.g. 5m for `make fuzz`,
# or 20000x) applies to every target.
set -euo pipefail

cd "$(dirname "$0")/.."
budget=${1:-${FUZZTIME:-}}
go=${GO:-go}

# Executions per target when no budget is given; targets not listed get
# default_count. Measured on 2 cores, most targets run 15,000-40,000
# execs/s; the ones listed run 2,500-6,000/s (FuzzNameViolations, which
# compares two policy evaluations per input, ~1,600/s; FuzzSignedPayloads,
# which signs and verifies an ECDSA JWS per input under the fuzzer's
# coverage instrumentation, ~1,400/s; the admin API's FuzzHandler, whose
# accepted requests write keys and configuration, ~1,400/s; FuzzBundle,
# which loads and compiles a bundle per input, ~750/s).
default_count=100000x
declare -A counts=(
	[FuzzNewOrderPayload]=50000x
	[FuzzFinalizePayload]=50000x
	[FuzzRedeem]=50000x
	[FuzzParseACMEExtension]=25000x
	[FuzzParseGeneralNames]=30000x
	[FuzzNameViolations]=15000x
	[FuzzBundle]=5000x
	[FuzzSignedPayloads]=15000x
	[FuzzHandler]=20000x
)

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
		fuzztime=${budget:-${counts[$target]:-$default_count}}
		echo "fuzz: $dir $target ($fuzztime)"
		start=$SECONDS
		"$go" test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$dir"
		echo "fuzz: $target took $((SECONDS - start))s"
		count=$((count + 1))
	done
done
echo "fuzz: $count target(s) passed"
