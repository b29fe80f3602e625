#!/usr/bin/env bash
# The reference run of docs/BENCHMARKS.md: step-ca under the same load
# generator (`policyca bench acme`) on the same machine, so that "3× step-ca"
# compares like with like. A fresh step-ca (Badger, soft keys) per run, with
# the issuer of a throw-away `policyca init`; names resolve through a DNS
# server on loopback that answers 127.0.0.1 to every A query (Pebble's
# pebble-challtestsrv), because step-ca does not resolve *.localhost itself.
# Prints one Markdown row like scripts/bench-acme.sh:
#   | clients | accounts | step-ca | issuances/s | p50 | p99 | server CPU/issuance | generator CPU/issuance | not issued |
#
# Usage: scripts/bench-stepca.sh POLICYCA_BINARY STEP_CA_BINARY CHALLTESTSRV_BINARY CLIENTS one|per-order [N]
# The two reference binaries come from the Go module proxy:
#   GOBIN=/tmp/refbin CGO_ENABLED=0 go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2
#   GOBIN=/tmp/refbin go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

bin=$1 stepca=$2 dnssrv=$3 clients=$4 accounts=$5 n=${6:-1000}
state=$(mktemp -d /tmp/stepca-bench.XXXXXX)
trap 'rm -rf "$state"' EXIT
listen=127.0.0.1:24444 http01=25002 dns=127.0.0.1:25053

"$bin" init --state "$state/pca" --listen 127.0.0.1:24443 --http01-port $http01 >/dev/null
cat >"$state/ca.json" <<JSON
{
  "root": "$state/pca/certs/root.pem",
  "crt": "$state/pca/certs/intermediate.pem",
  "key": "$state/pca/keys/intermediate.key",
  "address": "$listen",
  "dnsNames": ["localhost", "127.0.0.1"],
  "logger": {"format": "text"},
  "db": {"type": "badgerv2", "dataSource": "$state/db"},
  "authority": {"provisioners": [{"type": "ACME", "name": "acme"}]},
  "tls": {"minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false}
}
JSON

"$dnssrv" -dnsserver $dns -doh '' -http01 '' -https01 '' -tlsalpn01 '' \
	-management 127.0.0.1:25055 -defaultIPv6 '' >"$state/dns.log" 2>&1 &
dnspid=$!
"$stepca" "$state/ca.json" --insecure --acme-http-port $http01 --resolver $dns >"$state/ca.log" 2>&1 &
pid=$!
trap 'kill $pid $dnspid 2>/dev/null; wait $pid $dnspid 2>/dev/null; rm -rf "$state"' EXIT
wait_listening $listen

# The exit status is 1 when some issuances failed: still print the row.
"$bin" bench acme --dir "https://$listen/acme/acme/directory" --ca "$state/pca/certs/root.pem" \
	-n "$n" -c "$clients" --accounts "$accounts" --http01-port $http01 --ident 's-{n}.localhost' \
	--server-pid $pid --json >"$state/result.json" || true

python3 - "$clients" "$accounts" "$state/result.json" <<'PY'
import json, sys
c, acc, path = sys.argv[1:]
r = json.load(open(path))
l = r["latency"]
errors = r["requested"] - r["succeeded"]
print("| %s | %s | step-ca | %.1f | %.0f ms | %.0f ms | %.2f ms | %.2f ms | %d |" % (
    c, acc, r["issuances_per_second"], l["p50_ns"] / 1e6, l["p99_ns"] / 1e6,
    r["server_cpu"]["per_op_ns"] / 1e6, r["client_cpu"]["per_op_ns"] / 1e6, errors))
PY
