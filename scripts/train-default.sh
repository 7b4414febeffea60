#!/usr/bin/env bash
# Trains the four default text models the page ships (README, "Default models"): the recorded
# `unmask train` commands. Each run lives in runs/<name>/ and resumes when run again (after a
# time limit, or with a larger MAX_STEPS_<NAME> to train longer); each exports to
# www/models/default/<name>/ when it stops.
#
#   scripts/train-default.sh [mdlm|bd3|ar|forcing ...]
#                                                   (default: all four, one after another)
#   TIME_LIMIT=60 scripts/train-default.sh bd3      (minutes per run; it checkpoints and stops)
#   WARM_START=1 MAX_STEPS_MDLM=3400 scripts/train-default.sh mdlm
#                                                   (a new run in an empty runs/mdlm/ continues
#                                                    the shipped folder: weights, recipe, history;
#                                                    AdamW's moments restart)
#
# What shipped (each folder's training.json lists its commands): all three ran the defaults below
# first; then, with the first runs moved aside (runs/old/), MDLM and BD3-LM were continued with
#   WARM_START=1 MAX_STEPS_MDLM=3400 MAX_STEPS_BD3=1600 TIME_LIMIT=110 scripts/train-default.sh mdlm bd3
# and then all three (MDLM and BD3-LM resuming those runs, AR warm-started from its folder; the
# time limit stopped them at steps 4,890, 2,235 and 2,639) with
#   WARM_START=1 MAX_STEPS_MDLM=4900 MAX_STEPS_BD3=2300 MAX_STEPS_AR=2650 TIME_LIMIT=85 scripts/train-default.sh
# and then MDLM and BD3-LM once more, side by side, resuming those runs (stopped by the time limit
# at steps 7,792 and 3,469) with
#   MAX_STEPS_MDLM=8200 TIME_LIMIT=105 scripts/train-default.sh mdlm &
#   MAX_STEPS_BD3=3650 TIME_LIMIT=105 scripts/train-default.sh bd3
# and then both once more, side by side, as fresh runs (runs/mdlm and runs/bd3 moved aside)
# warm-started from the folders that stage exported (stopped by the time limit at steps 8,978
# and 3,989) with
#   WARM_START=1 MAX_STEPS_MDLM=9100 TIME_LIMIT=72 scripts/train-default.sh mdlm &
#   WARM_START=1 MAX_STEPS_BD3=4000 TIME_LIMIT=72 scripts/train-default.sh bd3
# and a sixth time the same way, on a clean machine (no runs/), both reaching their last step
# (10,900 and 4,800) before the time limit:
#   WARM_START=1 MAX_STEPS_MDLM=10900 TIME_LIMIT=70 scripts/train-default.sh mdlm &
#   WARM_START=1 MAX_STEPS_BD3=4800 TIME_LIMIT=70 scripts/train-default.sh bd3
# and a seventh resuming those runs (AdamW state kept), stopped by the time limit at steps 12,469
# and 5,467, with
#   MAX_STEPS_MDLM=12700 TIME_LIMIT=32 scripts/train-default.sh mdlm &
#   MAX_STEPS_BD3=5500 TIME_LIMIT=32 scripts/train-default.sh bd3
# Diffusion forcing (2026-12-07) ran the defaults below, then resumed that run to 5,000 steps:
#   MAX_STEPS_FORCING=2650 TIME_LIMIT=72 scripts/train-default.sh forcing
#   MAX_STEPS_FORCING=5000 TIME_LIMIT=55 scripts/train-default.sh forcing
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN="${UNMASK_BIN:-$CARGO_TARGET_DIR/debug/unmask}"
[ -x "$BIN" ] || cargo build --bin unmask

# One architecture for the four (≈2.1M parameters: 4 blocks of width 128, a 4096-token
# vocabulary, 256-token windows), sized for a 2-core CPU; see README for the throughput.
SHAPE=(--hidden-dim 128 --n-blocks 4 --n-heads 4 --cond-dim 64 --model-length 256)
RECIPE=(--batch-size 8 --lr 1e-3 --warmup-steps 50 --ema 0.999 --val-every 100 --checkpoint-every 50 --seed 0)

train() {
  local name=$1 steps=$2; shift 2
  local run="runs/$name" args=()
  if [ -f "$run/run.json" ]; then
    : # resume: the run remembers its recipe
  elif [ -n "${WARM_START:-}" ]; then
    args=(--warm-start "www/models/default/$name")
  else
    args=(--objective "$@" "${SHAPE[@]}" "${RECIPE[@]}")
  fi
  "$BIN" train --run "$run" --corpus data/corpus --out "www/models/default/$name" \
    --max-steps "$steps" ${TIME_LIMIT:+--time-limit-minutes "$TIME_LIMIT"} "${args[@]}"
}

for name in "${@:-mdlm bd3 ar forcing}"; do
  for n in $name; do
    case "$n" in
      mdlm) train mdlm "${MAX_STEPS_MDLM:-1100}" mdlm ;;
      bd3) train bd3 "${MAX_STEPS_BD3:-550}" bd3 --block-size 4 ;;
      ar) train ar "${MAX_STEPS_AR:-1100}" ar ;;
      forcing) train forcing "${MAX_STEPS_FORCING:-2650}" forcing ;;
      *) echo "unknown model $n: use mdlm, bd3, ar or forcing" >&2; exit 2 ;;
    esac
  done
done
