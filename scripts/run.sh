#!/usr/bin/env bash
# Installs what is missing and runs Unmask: for now the command-line generator on the bundled
# model, live in the terminal (the web page arrives with its own issue). Extra arguments go to
# `unmask generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
. scripts/env.sh
cargo run --locked --bin unmask -- generate --model tests/fixtures/tiny \
    --prompt "the old man saw a" --sampler bd3 --gen-length 24 --steps 24 --delay-ms 150 "$@"
