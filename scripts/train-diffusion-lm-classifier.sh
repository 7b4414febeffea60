#!/usr/bin/env bash
# Trains the shipped Diffusion-LM control classifier (README, "Diffusion-LM"): the recorded
# `unmask train` command. It reads the word vectors of www/models/default/diffusion-lm/ (frozen),
# so it is trained again whenever that model is. The run lives in runs/diffusion-lm-classifier/
# (a run stopped by the time limit resumes with `unmask train --run runs/diffusion-lm-classifier`
# and the same --out); it exports to www/models/default/diffusion-lm-classifier/ when it stops. It
# used both CPU cores of the machine it was trained on.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN="${UNMASK_BIN:-$CARGO_TARGET_DIR/debug/unmask}"
[ -x "$BIN" ] || cargo build --locked --bin unmask
runs="${RUNS:-runs}"

"$BIN" train --objective latent-classifier --denoiser www/models/default/diffusion-lm \
    --corpus data/corpus --run "$runs/diffusion-lm-classifier" \
    --max-steps 4000 --batch-size 64 --lr 1e-3 --warmup-steps 200 --val-every 500 \
    --val-windows 512 --checkpoint-every 500 --seed 0 --time-limit-minutes 30 --half \
    --out www/models/default/diffusion-lm-classifier
