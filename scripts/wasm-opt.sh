#!/usr/bin/env bash
# Trunk post-build hook: runs binaryen's wasm-opt over the built module in place: -O1 (on this
# module it gzips smaller than -Oz and runs in a third of the time), then identical functions
# merged, similar ones merged with their differing constants as parameters, -O1 again over what
# the merges left (and the merges' new duplicates), and the functions ordered by how often they
# are called (the most called get the shortest indices in every call instruction, and neighbours
# compress together): 4.60 → 4.33 MB gzip, in about two minutes (BENCHMARKS.md, "the page's
# size"). binaryen comes from npm (tools/package.json, installed by scripts/install.sh): Debian's
# binaryen 108 breaks the module. Without it the page still builds, larger, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
module="${TRUNK_STAGING_DIR:?run by trunk}/unmask-web_bg.wasm"
opt=tools/node_modules/binaryen/bin/wasm-opt
if [ "${UNMASK_WASM_OPT:-1}" = 0 ]; then
    exit 0
fi
if [ ! -x "$opt" ] || ! command -v node >/dev/null 2>&1; then
    echo "wasm-opt: binaryen is not installed (scripts/install.sh installs it); the module stays unoptimised" >&2
    exit 0
fi
# The features the module uses (wasm-bindgen's externref table, SIMD, bulk memory …).
"$opt" -O1 --duplicate-function-elimination --merge-similar-functions \
    -O1 --duplicate-function-elimination --reorder-functions \
    --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$module" -o "$module.opt"
mv "$module.opt" "$module"
