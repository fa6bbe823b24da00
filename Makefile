# xmppd developer entry points. `make run` and `make test` are all a newcomer needs.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := build

GO ?= go

# Pass CI (from the environment or `make test CI=true`) through to the tests;
# leave it unset when it is unset.
ifdef CI
export CI
endif

.PHONY: build web run test fuzz bench bench-compare clean

build:
	$(GO) build -o bin/ ./cmd/...

# The web client (Converse.js from npm, into web/node_modules; never
# committed). Without npm it says so and the server runs without /chat/.
web:
	scripts/web-deps.sh --client-only || echo "make web: the web client is not installed; /chat/ will say so" >&2

# With no config the server serves localhost from ./data (embedded storage,
# self-signed certificate), with WebSocket, BOSH and the web client on
# http://localhost:5280.
run: build web
	./bin/xmppd

# Installs missing Debian test deps (slixmpp, go-sendxmpp, sendxmpp, Prosody,
# chromium) and the npm packages
# of web/, uses or starts Postgres and Redis, then vets, checks formatting and
# runs every test under the race detector (fuzz seed corpora included),
# through internal/testreport: go test's usual output, then each skipped test
# and the reason it gave (without CI=true a missing tool skips a test).
test:
	scripts/test-deps.sh
	scripts/web-deps.sh
	services="$$(scripts/test-services.sh)"
	eval "$$services"
	$(GO) vet ./...
	unformatted="$$(find . -path ./.git -prune -o -path '*/testdata' -prune -o -path '*/node_modules' -prune -o -type f -name '*.go' -exec gofmt -l {} +)"
	if [[ -n $$unformatted ]]; then
		echo "gofmt needed on:" >&2
		echo "$$unformatted" >&2
		exit 1
	fi
	$(GO) test -race -count=1 -timeout 15m -json ./... | $(GO) run ./internal/testreport

# Every fuzz target for FUZZTIME each (30s here; scripts/fuzz.sh alone runs
# an hour each). Crashes land in testdata/fuzz/, which make test replays.
fuzz:
	FUZZTIME=$${FUZZTIME:-30s} scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./xmpp/...

# Prosody, ejabberd and xmppd under the same load, one after the other, with
# a table of the results (docs/BENCHMARKS.md). QUICK=1 for a smoke run.
bench-compare:
	bench/run.sh

clean:
	rm -rf bin
