# reconciler: policy-driven GitOps for database encryption.
# `make help` lists the targets.

GO        ?= go
BIN       := bin/reconciler
TOOLS     := $(CURDIR)/.tools
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2
# The real Vault server for the vault/ tests, built from tools/vault (its
# own module) into the user cache, never into the repository: 500 MB, and
# ten minutes the first time.
VAULT_VERSION := 1.21.0
VAULT_BIN ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/reconciler/vault-$(VAULT_VERSION)
export RECONCILER_VAULT_BIN := $(VAULT_BIN)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/reconciler
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/reconciler

.PHONY: demo
demo: build ## Run the quickstart in .demo/: a git fleet, the reconciler, agents, SSL on by merge
	bash examples/demo/demo.sh

.PHONY: vault
vault: $(VAULT_BIN) ## Build the Vault server the tests run (once; cached outside the repository)

$(VAULT_BIN): tools/vault/go.mod tools/vault/go.sum
	mkdir -p $(dir $(VAULT_BIN))
	cd tools/vault && $(GO) build -o $(VAULT_BIN).tmp github.com/hashicorp/vault
	mv $(VAULT_BIN).tmp $(VAULT_BIN)

.PHONY: test
test: vault ## Run every test (race detector on), the examples and the conftest comparison
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	@# Builds conftest v0.71.1 from the module proxy and compares verdicts with it.
	$(GO) test -count=1 -timeout 10m -tags conftestcompat -run Conftest ./policy/

.PHONY: soak
soak: vault ## The fault tests at full size: 300 instances, 20 kills, Vault down a minute (about 3 minutes here)
	RECONCILER_SOAK=1 $(GO) test -count=1 -timeout 90m -run 'Survives|FailOver' -v ./cmd/reconciler

.PHONY: lint
lint: $(TOOLS)/staticcheck ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags conftestcompat ./policy/
	$(TOOLS)/staticcheck ./...
	$(TOOLS)/staticcheck -tags conftestcompat ./policy/

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: fuzz
fuzz: ## Run every fuzz target of every package for FUZZTIME each (default 30s)
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "$$pkg $$target"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target$$" -fuzztime $(or $(FUZZTIME),30s) || exit 1; \
		done; \
	done

.PHONY: bench
bench: vault ## Go benchmarks, diff on a 10,000-instance fleet against conftest and a bare loop, the daemon under 10,000 agents
	$(GO) test -run '^$$' -bench . -benchmem ./specs ./policy ./reconciler/... ./vault/... ./agent/rpc ./agent/transport
	$(GO) test -run '^$$' -bench CommitToVerified -benchtime 20x ./cmd/reconciler
	@# A one-file commit against a full resync of a 10,000-instance git fleet.
	$(GO) test -run '^$$' -bench OneFileCommit -benchtime 10x ./reconciler/controller
	@# A rollout of 1,000 instances through the real Vault against a bare loop of its Vault calls.
	$(GO) test -run '^$$' -bench RolloutThroughVault -benchtime 3x -timeout 30m ./reconciler/controller
	bash bench/run.sh
	bash bench/agents.sh

.PHONY: clean
clean: ## Remove build outputs and benchmark fleets
	rm -rf bin .bench
