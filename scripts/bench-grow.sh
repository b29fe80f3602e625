#!/usr/bin/env bash
# A long-lived CA under load: one fresh CA (default configuration, soft
# keys), then ROUNDS runs of `policyca bench acme` of N issuances each at
# CLIENTS clients with an account per order, against the same database, one
# line per run. Shows whether the cost of an issuance grows with the
# database (docs/BENCHMARKS.md, "A growing database").
#
# Usage: scripts/bench-grow.sh POLICYCA_BINARY [ROUNDS [N [CLIENTS]]]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

bin=$1 rounds=${2:-10} n=${3:-5000} clients=${4:-32}
state=$(mktemp -d /tmp/policyca-grow.XXXXXX)
trap 'rm -rf "$state"' EXIT
listen=127.0.0.1:24443 http01=25002

"$bin" init --state "$state/ca" --listen $listen --http01-port $http01 >/dev/null
"$bin" ca --state "$state/ca" >"$state/ca.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
wait_listening $listen

echo "| run | certificates before | issuances/s | p50 | p99 | server CPU/issuance | generator CPU/issuance | ratio | not issued | database |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq 0 $((rounds - 1))); do
	"$bin" bench acme --dir "https://$listen/acme/acme/directory" --ca "$state/ca/certs/root.pem" \
		-n "$n" -c "$clients" --accounts per-order --http01-port $http01 \
		--ident "g-{n+$((r * n))}.localhost" --server-pid $pid --json >"$state/result.json" || true
	python3 - "$r" "$((r * n))" "$state/result.json" "$state/ca/db/policyca.db" <<'PY'
import json, os, sys
r, before, path, db = sys.argv[1:]
x = json.load(open(path))
l, s, c = x["latency"], x["server_cpu"]["per_op_ns"], x["client_cpu"]["per_op_ns"]
print("| %s | %s | %.1f | %.0f ms | %.0f ms | %.2f ms | %.2f ms | %.2f | %d | %d MB |" % (
    r, before, x["issuances_per_second"], l["p50_ns"] / 1e6, l["p99_ns"] / 1e6, s / 1e6, c / 1e6,
    s / c, x["requested"] - x["succeeded"], os.path.getsize(db) // 1000000))
PY
done
