#!/usr/bin/env bash
# init-token.sh STATE_DIR LABEL [SO_PIN USER_PIN]
#
# Sets up a SoftHSM2 token for policyca demos and tests:
#   - writes STATE_DIR/softhsm2.conf from softhsm2.conf.tmpl (tokens in
#     STATE_DIR/tokens, file backend, log level ERROR);
#   - initialises a token labelled LABEL with softhsm2-util;
#   - stores the user PIN in STATE_DIR/LABEL.user-pin (mode 0600), and the SO PIN
#     in STATE_DIR/LABEL.so-pin, generating random PINs when none are given;
#   - prints the `export SOFTHSM2_CONF=…` line and the token's pkcs11: URI
#     (append ";object=NAME" to the path part to name a key).
# Refuses to create a second token with a label that already exists: the
# CA selects tokens by label, so duplicates would be ambiguous.
set -euo pipefail

usage() { echo "usage: $0 STATE_DIR LABEL [SO_PIN USER_PIN]" >&2; exit 2; }
[[ $# -eq 2 || $# -eq 4 ]] || usage
state=$1 label=$2
so_pin=${3:-} user_pin=${4:-}
[[ -n $state && -n $label ]] || usage
# Keep labels to characters that need no escaping in a URI or a shell.
[[ $label =~ ^[A-Za-z0-9._-]{1,32}$ ]] || { echo "$0: LABEL must be 1-32 of [A-Za-z0-9._-]" >&2; exit 2; }

command -v softhsm2-util >/dev/null || { echo "$0: softhsm2-util not found (apt-get install softhsm2)" >&2; exit 1; }
module=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so; do
	if [[ -f $m ]]; then module=$m; break; fi
done
[[ -n $module ]] || { echo "$0: libsofthsm2.so not found (apt-get install softhsm2)" >&2; exit 1; }

randpin() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
[[ -n $so_pin ]] || so_pin=$(randpin)
[[ -n $user_pin ]] || user_pin=$(randpin)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
umask 077
mkdir -p "$state"
state=$(cd "$state" && pwd)
tokens=$state/tokens
[[ $tokens != *$'\n'* ]] || { echo "$0: STATE_DIR contains a newline" >&2; exit 2; }
mkdir -p "$tokens"
conf=$state/softhsm2.conf
tmpl=$(<"$here/softhsm2.conf.tmpl")
printf '%s\n' "${tmpl//'{{.TokenDir}}'/$tokens}" >"$conf"
export SOFTHSM2_CONF=$conf

if softhsm2-util --show-slots | awk -v l="$label" '$1 == "Label:" { sub(/^[ \t]*Label:[ \t]*/, ""); sub(/[ \t]+$/, ""); if ($0 == l) found = 1 } END { exit !found }'; then
	echo "$0: a token labelled $label already exists in $tokens" >&2
	exit 1
fi

softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
printf '%s\n' "$user_pin" >"$state/$label.user-pin"
printf '%s\n' "$so_pin" >"$state/$label.so-pin"

echo "export SOFTHSM2_CONF=$conf"
echo "pkcs11:token=$label?module-path=$module&pin-source=file:$state/$label.user-pin"
