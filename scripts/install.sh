#!/usr/bin/env bash
# Installs what Unmask's build and tests need on Debian, skipping what is already there.
# Usage: scripts/install.sh
set -euo pipefail

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

# C toolchain for -sys crates; Mesa's lavapipe gives wgpu a Vulkan device without a GPU.
apt_install build-essential pkg-config mesa-vulkan-drivers
