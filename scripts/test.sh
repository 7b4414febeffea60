#!/usr/bin/env bash
# Runs every test: unit and integration tests (fixture parity, samplers, errors, CLI, wgpu on
# lavapipe), the fuzz target's build, the page's build (Trunk, wasm32) and the page in headless
# Chromium (WebGPU on SwiftShader, and the CPU fallback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test
. scripts/env.sh
export UNMASK_REQUIRE_WGPU=1
cargo test --locked --all-targets
cargo check --locked --manifest-path fuzz/Cargo.toml --bins
trunk build --locked
UNMASK_BIN="$CARGO_TARGET_DIR/debug/unmask" node --test tests/browser/
