#!/usr/bin/env bash
# Runs every test: unit, integration (fixture parity, samplers, errors, wgpu on lavapipe),
# the fuzz target's build and the browser target's build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
. scripts/env.sh
export UNMASK_REQUIRE_WGPU=1
cargo test --locked --all-targets
cargo check --locked --manifest-path fuzz/Cargo.toml --bins
cargo check --locked --lib --target wasm32-unknown-unknown
