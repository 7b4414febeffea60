#!/usr/bin/env bash
# Fuzzes the formats Unmask reads from strangers with libFuzzer (cargo-fuzz): the model loader
# (config.json + tokenizer.json + model.safetensors), trajectory import and the page's link.
# Not part of CI: `.ci/run` only builds the targets and replays what is committed here
# (tests/fuzz_corpus.rs). Commit fuzz/corpus/ and fuzz/artifacts/ after a run.
#
# Usage: scripts/fuzz.sh [RUNS] [TARGET...]   (default: 1,000,000 executions of each target)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

# libFuzzer needs a nightly compiler (-Zsanitizer, coverage instrumentation); pinned by date so
# that every run builds the same way. Installed here, never by .ci/run.
toolchain="nightly-2026-05-20"
cargo_fuzz_version="0.13.2"
rustup toolchain list | grep -q "^$toolchain" \
    || rustup toolchain install "$toolchain" --profile minimal
cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version" \
    || cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked

runs="${1:-1000000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model_folder trajectory page_query)
fuzz_target_dir="${UNMASK_FUZZ_TARGET:-/var/tmp/unmask-fuzz-target}"
mkdir -p fuzz/logs

# The seeds (a narrow random-weight model, runs of each sampler, the page's own links).
(cd fuzz && CARGO_TARGET_DIR="$fuzz_target_dir" cargo +"$toolchain" run --quiet --release --bin seeds)

for target in "${targets[@]}"; do
    echo "fuzzing $target: $runs executions" >&2
    # Release with debug assertions and overflow checks (cargo-fuzz's default) but without
    # AddressSanitizer: the code is safe Rust, what is hunted is panics, and ASan halves the
    # executions per second. A crash lands in fuzz/artifacts/$target/.
    if ! cargo +"$toolchain" fuzz run --sanitizer none --target-dir "$fuzz_target_dir" "$target" -- \
        -runs="$runs" -max_len=262144 -print_final_stats=1 >"fuzz/logs/$target.log" 2>&1; then
        echo "$target: stopped on a crash (fuzz/artifacts/$target/, log fuzz/logs/$target.log)" >&2
    fi
    grep -E "^#[0-9]+.*DONE|^Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|panicked" \
        "fuzz/logs/$target.log" >&2 || true
    # Keep only the inputs that add coverage.
    cargo +"$toolchain" fuzz cmin --sanitizer none --target-dir "$fuzz_target_dir" "$target" >/dev/null 2>&1
done

# Minimising renames inputs after their hashes: write the seeds again, which the replay test
# (tests/fuzz_corpus.rs) looks for.
(cd fuzz && CARGO_TARGET_DIR="$fuzz_target_dir" cargo +"$toolchain" run --quiet --release --bin seeds)
