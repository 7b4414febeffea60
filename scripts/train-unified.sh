#!/usr/bin/env bash
# Trains the text + image family's shipped folder (README, "Text and images in one model"): the
# recorded `unmask train` commands. The run lives in runs/unified/ and resumes when run again; it
# exports to www/models/default/unified/ when it stops.
#
#   scripts/train-unified.sh
#
# What shipped (its training.json lists both commands): the run below without --half --out, which
# finished its 3,000 steps in 68 minutes on 2 CPU cores, then the same run resumed with
# `--max-steps 4500 --time-limit-minutes 32 --half --out …`, stopped by its limit at step 4,441.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN="${UNMASK_BIN:-$CARGO_TARGET_DIR/debug/unmask}"
[ -x "$BIN" ] || cargo build --locked --bin unmask
runs="${RUNS:-runs}"

"$BIN" train --objective unified --run "$runs/unified" \
    --batch-size 16 --lr 1e-3 --warmup-steps 200 --max-steps 3000 \
    --val-every 250 --checkpoint-every 250 --seed 0 --time-limit-minutes 70 \
    --half --out www/models/default/unified
