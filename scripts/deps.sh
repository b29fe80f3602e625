#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (certbot for the e2e test,
# SoftHSM2 and OpenSC for the PKCS#11 signer, PostgreSQL for the HA store).
#
# A machine that already has every package does no network I/O at all: we ask
# dpkg first and only touch apt when something is missing, so `make test` stays
# usable offline once the packages are there.
set -euo pipefail

# gcc and libc6-dev: cgo (crypto11 for PKCS#11) and `go test -race` need a C toolchain.
PACKAGES=(gcc libc6-dev certbot softhsm2 opensc postgresql openssl iproute2 ca-certificates)

missing=()
for pkg in "${PACKAGES[@]}"; do
	# "install ok installed" is the only state in which the package's files are
	# present; "rc" (removed, config kept) or half-configured must be reinstalled.
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "deps: all packages installed (${PACKAGES[*]})"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run as root, or install them yourself:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
# Non-interactive so that postgresql's and tzdata's debconf prompts never block CI.
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
