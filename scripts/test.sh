#!/usr/bin/env bash
# Runs every test: unit and integration tests (fixture parity, samplers, errors, CLI, wgpu on
# lavapipe, data/corpus/ rebuilt from its Debian packages), the fuzz target's build, the page's
# build (Trunk, wasm32) and the page in headless Chromium (WebGPU on SwiftShader, and the CPU
# fallback), after the page's size gate (scripts/size-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh base
. scripts/env.sh
export UNMASK_REQUIRE_WGPU=1
# tests/corpus.rs rebuilds data/corpus/ from the packages scripts/corpus-sources.sh unpacks here.
export UNMASK_CORPUS_SOURCES="${UNMASK_CORPUS_SOURCES:-/var/tmp/unmask-corpus}"
# tests/digits.rs rebuilds data/digits/ from the scikit-learn wheel scripts/digits-source.sh fetches.
export UNMASK_DIGITS_SOURCES="${UNMASK_DIGITS_SOURCES:-/var/tmp/unmask-digits}"

# The native test build and the tools' builds use different target directories: on a cold machine
# they overlap (each has long single-crate stretches that leave a core idle).
native_log=$(mktemp)
setsid cargo test --locked --all-targets --no-run >"$native_log" 2>&1 &
native=$!
# If installing fails, stop the whole background build (cargo and its rustc children).
trap 'kill -- -"$native" 2>/dev/null || true; rm -f "$native_log"' EXIT
scripts/install.sh test
scripts/corpus-sources.sh "$UNMASK_CORPUS_SOURCES" >/dev/null
scripts/digits-source.sh "$UNMASK_DIGITS_SOURCES" >/dev/null
if ! wait "$native"; then
    cat "$native_log" >&2
    exit 1
fi
trap 'rm -f "$native_log"' EXIT

cargo test --locked --all-targets
cargo check --locked --manifest-path fuzz/Cargo.toml --bins
trunk build --locked
scripts/size-check.sh dist/unmask-web_bg.wasm
UNMASK_BIN="$CARGO_TARGET_DIR/debug/unmask" node --test tests/browser/*.test.mjs
