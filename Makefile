# policyca build, test and CI entry points. `make test` is what CI runs
# (.ci/run), so anything that must gate a merge belongs under it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go
STATE ?= .policyca
LISTEN ?= 127.0.0.1:8443
# make run is a demo on one machine: the CA validates http-01 and tls-alpn-01
# on unprivileged ports so certbot needs no root (production uses 80/443).
HTTP01_PORT ?= 5002
TLSALPN01_PORT ?= 5001
# The short fuzz run in `make test` is a smoke test that the targets still
# build and the seed corpus passes; `make fuzz` is for actually finding bugs.
# An empty FUZZTIME gives each target its execution count from
# scripts/fuzz.sh (about ten seconds each; a count, because a duration can
# trip a Go race, see the script). FUZZTIME=30s or =100000x overrides it.
# `make fuzz` keeps a duration, which is what exploring wants; a target that
# ends in a bare "context deadline exceeded" with no crasher there is that Go
# race (golang.org/issue/75804), not a finding.
FUZZTIME ?=
LONG_FUZZTIME ?= 5m
TEST_TIMEOUT ?= 20m

# Extra steps of `make test` added by later work (e.g. `opa test` over the
# policy bundle): define a target below and append its name here. They run
# after the Go tests and the fuzz smoke run.
TEST_EXTRA ?= policy-check

# testdata may hold deliberately malformed Go sources; the go tool skips it too.
FIND_GO_FILES = find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0

.PHONY: build run run-hsm deps test lint fmt-check vet staticcheck unit fuzz-short fuzz test-extra policy-check clean

# Always delegate to `go build`: it knows the real dependency graph and its
# cache makes an up-to-date build nearly free.
build:
	$(GO) build -o bin/policyca ./cmd/policyca

# First run creates the state (keys, root, config) and prints what was made;
# every later run reuses it, so the root a user already trusts stays valid.
# policyca.json is the config file init writes (bootstrap.ConfigFile).
run: build
	@if [ ! -e '$(STATE)/policyca.json' ]; then \
		bin/policyca init --state '$(STATE)' --listen '$(LISTEN)' --http01-port '$(HTTP01_PORT)' --tlsalpn01-port '$(TLSALPN01_PORT)'; \
	fi
	exec bin/policyca ca --state '$(STATE)'

# The same CA with its root and intermediate keys on a local SoftHSM2 token
# (created on first use in $(HSM_STATE)/softhsm, PIN in a 0600 file there).
HSM_STATE ?= .policyca-hsm
HSM_LISTEN ?= 127.0.0.1:8444
run-hsm: build
	@if [ ! -e '$(HSM_STATE)/policyca.json' ]; then \
		out=$$(softhsm/init-token.sh '$(HSM_STATE)/softhsm' policyca) && \
		export SOFTHSM2_CONF='$(HSM_STATE)/softhsm/softhsm2.conf' && \
		bin/policyca init --state '$(HSM_STATE)' --listen '$(HSM_LISTEN)' --http01-port '$(HTTP01_PORT)' --tlsalpn01-port '$(TLSALPN01_PORT)' \
			--kms "$$(printf '%s\n' "$$out" | grep '^pkcs11:')"; \
	fi
	SOFTHSM2_CONF='$(abspath $(HSM_STATE))/softhsm/softhsm2.conf' exec bin/policyca ca --state '$(HSM_STATE)'

deps:
	scripts/deps.sh

# Ordered steps rather than prerequisites so that `make -j test` still runs
# the cheap checks first and stops at the first failure. Each step reports its
# wall time, so a CI run creeping towards its time limit shows which step grew.
test: deps
	@for step in lint unit fuzz-short test-extra; do \
		echo "== make $$step"; \
		TIMEFORMAT="== make $$step took %0Rs"; \
		time $(MAKE) --no-print-directory $$step; \
	done

lint: fmt-check vet staticcheck

# xargs -r: gofmt with no file arguments would read stdin and hang.
fmt-check:
	@unformatted=$$($(FIND_GO_FILES) | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

# staticcheck is pinned in go.mod as a tool (go get -tool …), like opa.
staticcheck:
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

fuzz-short:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

fuzz:
	GO=$(GO) scripts/fuzz.sh $(LONG_FUZZTIME)

test-extra: $(TEST_EXTRA)
	@:

clean:
	rm -rf bin/ coverage.out coverage.html *.coverprofile

# The default bundle and its tests through OPA's own CLI (pinned in go.mod
# as a tool): strict checks, canonical formatting, and the unit tests.
POLICY_DIRS = policies/rego policytests
policy-check:
	$(GO) tool opa check --strict $(POLICY_DIRS)
	@unformatted=$$($(GO) tool opa fmt --list $(POLICY_DIRS) policies/examples); \
	if [ -n "$$unformatted" ]; then echo "opa fmt: these files need formatting (go tool opa fmt -w):"; echo "$$unformatted"; exit 1; fi
	$(GO) tool opa test -v $(POLICY_DIRS)
	@for ex in policies/examples/*/; do echo "== opa test $$ex"; $(GO) tool opa test $$ex || exit 1; done
