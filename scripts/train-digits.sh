#!/usr/bin/env bash
# Trains the digits family's two shipped folders (README, "Gaussian diffusion on digits"): the
# recorded `unmask train` commands. Each run lives in runs/<name>/ and resumes when run again;
# each exports to www/models/default/<name>/ when it stops. The two runs share nothing and each
# keeps one core busy, so they run side by side.
#
#   scripts/train-digits.sh            (both)
#   scripts/train-digits.sh ddpm       (one)
#
# What shipped (each folder's training.json lists its commands): ddpm started with
# --max-steps 15000 and was resumed at step 3,000 with --max-steps 9000 (only the cosine's end
# moved), and the classifier ran as below; both on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN="${UNMASK_BIN:-$CARGO_TARGET_DIR/debug/unmask}"
[ -x "$BIN" ] || cargo build --locked --bin unmask
runs="${RUNS:-runs}"
out=www/models/default

ddpm() {
    "$BIN" train --objective ddpm --run "$runs/ddpm" --classifier ../ddpm-classifier \
        --batch-size 128 --lr 1e-3 --warmup-steps 500 --max-steps 9000 --ema 0.9995 \
        --val-every 1000 --checkpoint-every 500 --seed 1 --half --out "$out/ddpm"
}

classifier() {
    "$BIN" train --objective classifier --run "$runs/ddpm-classifier" \
        --batch-size 128 --lr 1e-3 --warmup-steps 200 --max-steps 3000 --ema 0.999 \
        --val-every 500 --checkpoint-every 500 --seed 2 --half --out "$out/ddpm-classifier"
}

case "${1:-both}" in
    ddpm) ddpm ;;
    classifier | ddpm-classifier) classifier ;;
    both) ddpm & classifier; wait ;;
    *) echo "usage: $0 [ddpm|classifier]" >&2; exit 2 ;;
esac
