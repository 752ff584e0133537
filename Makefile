# Calico in Go. `make help` lists the targets.

SHELL      := /bin/bash
GO         ?= go
BIN        := $(CURDIR)/bin
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -X github.com/calico-go/calico/internal/buildinfo.Version=$(VERSION) \
              -X github.com/calico-go/calico/internal/buildinfo.GitCommit=$(GIT_COMMIT)
# Debian packages the binaries and the test suite use.
APT_PACKAGES := iproute2 nftables etcd-server etcd-client bird2 iputils-ping curl chromium ca-certificates
# Where `make run` keeps its embedded datastore (override: make run RUN_DIR=...).
RUN_DIR    ?= $(CURDIR)/.run
ETCD_LISTEN ?= 127.0.0.1:2379
ETCD_PEER   ?= 127.0.0.1:2380
TEST_TIMEOUT ?= 15m

.PHONY: help deps build test run down quickstart stop bench fuzz clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

deps: ## install missing Debian packages (needs root on a fresh machine)
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to run: apt-get install$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: ## build every binary into ./bin
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: deps ## install what is missing, then run the whole suite (vet, gofmt, unit and integration tests)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

run: deps build ## bring up a 3-host lab with the three-tier zero-trust example and print who reaches whom
	$(BIN)/calico-lab up --example three-tier

down: ## remove the lab that `make run` made
	$(BIN)/calico-lab down

quickstart: build ## only a datastore: start calico-node --embedded-datastore, apply examples/quickstart.yaml, show it
	@./hack/run.sh "$(BIN)" "$(RUN_DIR)" "$(ETCD_LISTEN)" "$(ETCD_PEER)"

stop: ## stop what `make quickstart` started (the data stays in RUN_DIR)
	@./hack/stop.sh "$(RUN_DIR)"

bench: ## run the benchmarks recorded in docs/performance.md
	$(GO) test -run '^$$' -bench . -benchmem ./internal/selector/ ./internal/datastore/...
	$(GO) test -run '^$$' -bench . -benchmem ./internal/ipam/
	$(GO) test -run '^$$' -bench BenchmarkAddDel -benchtime=100x ./internal/cni/
	$(GO) test -run '^$$' -bench . -benchmem ./internal/calc/ ./internal/kernel/...
	$(GO) test -run '^$$' -bench . -benchtime=50x ./internal/felix/
	$(GO) test -run '^$$' -bench BenchmarkDataplaneCost -benchtime=1x ./internal/dataplane/
	$(GO) test -run '^$$' -bench BenchmarkUp -benchtime=3x ./internal/lab/

fuzz: ## fuzz every parser for a minute each
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/selector/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./api/v3/
	$(GO) test -run '^$$' -fuzz "FuzzNetworkPolicy$$" -fuzztime 60s ./internal/k8sconv/

clean: ## remove build output (not the Go cache)
	rm -rf $(BIN)
