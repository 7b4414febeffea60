#!/usr/bin/env bash
# Installs what Unmask needs on Debian, skipping what is already there.
# Usage: scripts/install.sh          build and serve the page (Rust, wasm32, Trunk, wasm-bindgen,
#                                    binaryen's wasm-opt from npm)
#        scripts/install.sh test     the same, plus what the tests use (lavapipe, Chromium, Node)
#        scripts/install.sh base     only Rust, the wasm32 target and the C toolchain
set -euo pipefail
cd "$(dirname "$0")/.."

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_install() {
    local missing=()
    for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing ${missing[*]}" >&2
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

# Rust toolchain (rustup) with the browser target.
if ! command -v cargo >/dev/null 2>&1; then
    apt_install curl ca-certificates
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

# C toolchain for -sys crates.
apt_install build-essential pkg-config
[ "${1:-}" = "base" ] && exit 0

# Trunk and the wasm-bindgen CLI, built without their fat LTO (minutes less on a cold machine; they
# only move files around). The CLI must match the wasm-bindgen in Cargo.lock exactly.
tools_target="${UNMASK_TOOLS_TARGET:-/var/tmp/unmask-tools-target}"
cargo_install() {
    echo "building $1 $2 (once per machine)" >&2
    CARGO_TARGET_DIR="$tools_target" CARGO_PROFILE_RELEASE_LTO=off \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
        cargo install --quiet "$@"
}
trunk_version="0.21.14"
trunk --version 2>/dev/null | grep -qx "trunk $trunk_version" \
    || cargo_install trunk --version "$trunk_version" --locked
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
# Not --locked: wasm-bindgen-cli's own lock file pins crates that need a newer rustc.
wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $bindgen_version" \
    || cargo_install wasm-bindgen-cli --version "$bindgen_version"

# binaryen's wasm-opt for the page's post-build pass (Trunk.toml), from npm: Debian's is too old.
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ ! -x tools/node_modules/binaryen/bin/wasm-opt ]; then
    (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" = "test" ]; then
    # Mesa's lavapipe gives native wgpu a Vulkan device; Chromium (headless, SwiftShader WebGPU)
    # and Node with playwright-core drive the page.
    apt_install mesa-vulkan-drivers chromium
    if [ ! -d tests/browser/node_modules/playwright-core ]; then
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi
