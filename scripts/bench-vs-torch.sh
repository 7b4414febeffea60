#!/usr/bin/env bash
# Forward latency of the DiT in Unmask (`unmask bench --backends cpu --forward-only`) and in
# PyTorch eager (scripts/bench_vs_torch.py: f32, the same shapes, the same thread count), back to
# back in one run, with the ratio per length: the published OWT checkpoints' shape (169.6M) at
# L = 64, 256, 1,024 and the default models' shape at L = 64, 256. Not part of CI; the results go
# in BENCHMARKS.md with the machine they ran on.
#
# Usage: scripts/bench-vs-torch.sh [THREADS] [REPEATS]   (default: every core, 3 repeats)
# PyTorch: UNMASK_TORCH_PYTHON (default /var/tmp/torch-venv/bin/python), made once with
#   python3 -m venv /var/tmp/torch-venv && /var/tmp/torch-venv/bin/pip install torch
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
threads="${1:-$(nproc)}"
repeats="${2:-3}"
python="${UNMASK_TORCH_PYTHON:-/var/tmp/torch-venv/bin/python}"
if ! "$python" -c "import torch" 2>/dev/null; then
    echo "no PyTorch at $python: python3 -m venv /var/tmp/torch-venv && /var/tmp/torch-venv/bin/pip install torch" >&2
    exit 2
fi
# The perf profile (Cargo.toml): optimised, without the dev profile's debug assertions and
# overflow checks, which double the forward's time. UNMASK_BENCH_PROFILE=dev measures the test
# build instead.
profile="${UNMASK_BENCH_PROFILE:-perf}"
cargo build --locked --quiet --profile "$profile" --bin unmask
case "$profile" in
    dev) unmask="$CARGO_TARGET_DIR/debug/unmask" ;;
    *) unmask="$CARGO_TARGET_DIR/$profile/unmask" ;;
esac

# burn's CPU backend and its matmuls parallelise with rayon; PyTorch with its intra-op pool.
export RAYON_NUM_THREADS="$threads"
export OMP_NUM_THREADS="$threads"

ours() { # SHAPE LENGTHS -> "L ms" lines
    local source
    case "$1" in
        owt170m) source=(--preset owt170m) ;;
        default) source=(--model www/models/default/bd3) ;;
    esac
    "$unmask" bench "${source[@]}" --backends cpu --forward-only --lengths "$2" \
        --repeats "$repeats" 2>/dev/null \
        | sed -n 's/^| cpu | forward L=\([0-9]*\) | \([0-9.]*\) ms |$/\1 \2/p'
}

theirs() { # SHAPE LENGTHS -> "L ms" lines
    "$python" scripts/bench_vs_torch.py --shape "$1" --lengths "$2" --repeats "$repeats" \
        --threads "$threads" \
        | "$python" -c 'import json, sys; [print(r["length"], r["ms"]) for r in map(json.loads, sys.stdin)]'
}

torch_version=$("$python" -c "import torch; print(torch.__version__)")
echo "threads $threads, repeats $repeats, Unmask's $profile build, PyTorch $torch_version eager f32, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| shape | L | Unmask (ms) | PyTorch (ms) | Unmask / PyTorch |"
echo "|---|---|---|---|---|"
for run in "owt170m 64,256,1024" "default 64,256"; do
    set -- $run
    ours_out=$(ours "$1" "$2")
    theirs_out=$(theirs "$1" "$2")
    join <(sort <<<"$ours_out") <(sort <<<"$theirs_out") | sort -n \
        | awk -v shape="$1" '{ printf "| %s | %d | %.1f | %.1f | %.2f× |\n", shape, $1, $2, $3, $2 / $3 }'
done
