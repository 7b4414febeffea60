#!/usr/bin/env bash
# Trains the text + image family's shipped folder (README, "Text and images in one model"): the
# recorded `unmask train` commands. The first run lives in runs/unified/, the second in
# runs/unified-mmu/; each resumes when run again and exports to www/models/default/unified/ when
# it stops.
#
#   scripts/train-unified.sh
#
# What shipped (its training.json lists every command): the first run below without --half --out,
# which finished its 3,000 steps in 68 minutes on 2 CPU cores, then the same run resumed with
# `--max-steps 4500 --time-limit-minutes 32 --half --out …`, stopped by its limit at step 4,441;
# then the second run below, on that export's weights with three times the image → text
# sequences, its 1,500 steps in 60 minutes of training.
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

# A new run on the first one's export: three times the image → text sequences per step.
"$BIN" train --objective unified --run "$runs/unified-mmu" --warm-start www/models/default/unified \
    --batch-size 16 --batch-mmu 48 --batch-lm 4 --lr 5e-4 --warmup-steps 50 --max-steps 1500 \
    --val-every 250 --checkpoint-every 250 --seed 1 --time-limit-minutes 95 \
    --half --out www/models/default/unified
