# Shared environment of the run and test scripts (sourced).
# shellcheck shell=bash
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# Builds outlive a fresh clone: reuse one target directory per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/unmask-target}"
# wgpu/Vulkan want a private runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/unmask-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
