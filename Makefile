# binlogsvr: make build | test | lint | bench | demo
SHELL     := /bin/bash
GO        ?= go
BIN       := bin
GOFLAGS   ?=
PKGS      := ./...
TESTFLAGS ?= -race -count=1 -p 1 -timeout 40m

.PHONY: build test unit lint bench demo peers clean

build:
	$(GO) build -o $(BIN)/ ./binlogsvr/cmd/binlogsvr ./tools/binlogctl ./tools/bench ./tools/demo

# Installs the real servers the tests need (MariaDB from apt, MySQL 9.7 in a
# cached chroot). Needs root. Idempotent.
peers:
	bash tools/sandbox/install.sh

# The whole suite, against real servers started by tools/sandbox. One package
# at a time (-p 1): on 2 cores, two real-server packages side by side made the
# timing assertions (switchover pause < 2 s) fail under -race.
# On failure the failing tests and their messages are printed again at the
# end (servers' log tails printed on failure would otherwise bury them).
test: build
	$(GO) vet $(PKGS)
	@set -o pipefail; BINLOGSVR_BIN=$(CURDIR)/$(BIN) $(GO) test $(TESTFLAGS) $(PKGS) 2>&1 | tee $(BIN)/test.log \
	  || { echo "== make test failed; the failures (all output in $(BIN)/test.log):"; \
	       grep -E -e '--- FAIL|^FAIL|panic:|^\s+[a-z_]+_test\.go:[0-9]+: .*(want|got|not |no |fail|lost|error|Error|refus|timed out|after)' $(BIN)/test.log | grep -v 'sandbox.go' | tail -80; false; }

# Only the pure, in-process tests (no servers needed).
unit:
	$(GO) test -count=1 ./logger/...

lint:
	gofmt -l . | (! grep .) || (echo "gofmt would change the files above" && false)
	$(GO) vet $(PKGS)

bench: build
	$(BIN)/bench --out docs/BENCHMARKS.md

demo: build
	bash tools/sandbox/install.sh
	$(BIN)/demo

clean:
	rm -rf $(BIN)
