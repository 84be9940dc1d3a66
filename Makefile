# binlogsvr: make build | test | lint | bench | demo
GO        ?= go
BIN       := bin
GOFLAGS   ?=
PKGS      := ./...
TESTFLAGS ?= -race -count=1 -timeout 40m

.PHONY: build test unit lint bench demo peers clean

build:
	$(GO) build -o $(BIN)/ ./binlogsvr/cmd/binlogsvr ./tools/binlogctl ./tools/bench ./tools/demo

# Installs the real servers the tests need (MariaDB from apt, MySQL 9.7 in a
# cached chroot). Needs root. Idempotent.
peers:
	bash tools/sandbox/install.sh

# The whole suite, against real servers started by tools/sandbox.
test: build
	$(GO) vet $(PKGS)
	BINLOGSVR_BIN=$(CURDIR)/$(BIN) $(GO) test $(TESTFLAGS) $(PKGS)

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
