#!/usr/bin/env bash
# Trains the shipped Diffusion-LM folder (README, "Diffusion-LM"): the recorded `unmask train`
# command. The run lives in runs/diffusion-lm/ and resumes when run again; it exports to
# www/models/default/diffusion-lm/ when it stops (its training.json lists the commands that made
# it). It used both CPU cores of the machine it was trained on. Its config.json names the control
# classifier (--classifier, added after the shipped run: that folder's config.json was edited to
# match), which scripts/train-diffusion-lm-classifier.sh trains on this model's word vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN="${UNMASK_BIN:-$CARGO_TARGET_DIR/debug/unmask}"
[ -x "$BIN" ] || cargo build --locked --bin unmask
runs="${RUNS:-runs}"

"$BIN" train --objective diffusion-lm --corpus data/corpus --run "$runs/diffusion-lm" \
    --max-steps 9000 --batch-size 32 --lr 1e-3 --warmup-steps 500 --val-every 500 \
    --val-windows 256 --checkpoint-every 500 --seed 0 --time-limit-minutes 75 --half \
    --classifier ../diffusion-lm-classifier \
    --out www/models/default/diffusion-lm
