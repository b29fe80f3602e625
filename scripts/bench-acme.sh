#!/usr/bin/env bash
# One end-to-end load run as docs/BENCHMARKS.md measures it: a fresh CA
# (default configuration: SQLite synchronous=FULL, zlint, the default
# policy bundle) with soft keys or keys on a fresh SoftHSM2 token, then
# `policyca bench acme` against it on loopback, then the CA is stopped and
# its state removed. Prints one Markdown table row:
#   | clients | accounts | keys | issuances/s | p50 | p99 | server CPU/issuance | generator CPU/issuance | not issued |
#
# Usage: scripts/bench-acme.sh POLICYCA_BINARY CLIENTS one|per-order soft|hsm [N]
# Needs python3 (installed with certbot by `make deps`) for the summary line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

bin=$1 clients=$2 accounts=$3 keys=$4 n=${5:-1000}
state=$(mktemp -d /tmp/policyca-bench.XXXXXX)
trap 'rm -rf "$state"' EXIT
listen=127.0.0.1:24443 http01=25002

case $keys in
soft) "$bin" init --state "$state/ca" --listen $listen --http01-port $http01 >/dev/null ;;
hsm)
	uri=$("$(dirname "$0")/../softhsm/init-token.sh" "$state/softhsm" policyca | grep '^pkcs11:')
	export SOFTHSM2_CONF=$state/softhsm/softhsm2.conf
	"$bin" init --state "$state/ca" --listen $listen --http01-port $http01 --kms "$uri" >/dev/null
	;;
*) echo "keys: soft or hsm" >&2; exit 2 ;;
esac

"$bin" ca --state "$state/ca" >"$state/ca.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
wait_listening $listen

"$bin" bench acme --dir "https://$listen/acme/acme/directory" --ca "$state/ca/certs/root.pem" \
	-n "$n" -c "$clients" --accounts "$accounts" --http01-port $http01 --ident 'm-{n}.localhost' \
	--server-pid $pid --json >"$state/result.json"

python3 - "$clients" "$accounts" "$keys" "$state/result.json" <<'PY'
import json, sys
c, acc, keys, path = sys.argv[1:]
r = json.load(open(path))
l = r["latency"]
errors = r["requested"] - r["succeeded"]  # failed, aborted or never started
print("| %s | %s | %s | %.1f | %.0f ms | %.0f ms | %.2f ms | %.2f ms | %d |" % (
    c, acc, keys, r["issuances_per_second"], l["p50_ns"] / 1e6, l["p99_ns"] / 1e6,
    r["server_cpu"]["per_op_ns"] / 1e6, r["client_cpu"]["per_op_ns"] / 1e6, errors))
PY
