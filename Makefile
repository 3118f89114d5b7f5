# wsgo build, test and benchmark entry points.
#
# PYTHON names the CPython (3.9+) that bin/wsgo embeds; any interpreter can be
# given by path: make build PYTHON=$(pyenv prefix 3.12.1)/bin/python3
PYTHON      ?= python3
# The tests run Flask and Django from Debian's archive, which only Debian's
# own interpreter sees, so the test binaries embed that one.
TEST_PYTHON ?= /usr/bin/python3
GO          ?= go
BIN         ?= bin/wsgo
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Evaluated by the shell inside each recipe, so that naming another PYTHON
# on the command line is all it takes to rebuild against it.
cgo_env = CGO_ENABLED=1 \
	CGO_CFLAGS="$$($(1) build/pyflags.py cflags) -O2" \
	CGO_LDFLAGS="$$($(1) build/pyflags.py ldflags)"
go_ldflags = -ldflags "-X main.version=$(VERSION) -X main.pythonExecutable=$$($(1) build/pyflags.py executable)"

.PHONY: build run test test-deps lint bench bench-deps clean

build:
	$(call cgo_env,$(PYTHON)) $(GO) build $(call go_ldflags,$(PYTHON)) -o $(BIN) ./cmd/wsgo

run: build
	$(BIN) --module hello --chdir examples --http-socket 127.0.0.1:8000

test-deps:
	bash build/install-deps.sh test

# The integration tests start bin/wsgo-race: the real server, built with the
# race detector, so a data race anywhere in it fails the run.
test: test-deps
	$(call cgo_env,$(TEST_PYTHON)) $(GO) build -race $(call go_ldflags,$(TEST_PYTHON)) -o bin/wsgo-race ./cmd/wsgo
	$(call cgo_env,$(TEST_PYTHON)) $(GO) build $(call go_ldflags,$(TEST_PYTHON)) -o $(BIN) ./cmd/wsgo
	$(MAKE) --no-print-directory lint
	$(call cgo_env,$(TEST_PYTHON)) WSGO_BIN=$(CURDIR)/bin/wsgo-race $(GO) test -race -count=1 -timeout 30m ./...
	bash build/other-pythons.sh

lint:
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(call cgo_env,$(TEST_PYTHON)) $(GO) vet ./...
	$(call cgo_env,$(TEST_PYTHON)) $$($(GO) env GOPATH)/bin/staticcheck ./...

bench-deps:
	bash build/install-deps.sh bench

# The peers run Debian's Python, so wsgo embeds the same one for the
# comparison. Each figure is the median of three 5 s runs.
bench: bench-deps
	$(MAKE) --no-print-directory build PYTHON=$(TEST_PYTHON)
	$(GO) run ./bench -repeat 3 -duration 5s -out BENCHMARKS.md

clean:
	rm -rf bin
