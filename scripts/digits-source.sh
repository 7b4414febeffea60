#!/usr/bin/env bash
# Downloads the scikit-learn wheel that holds the 8×8 handwritten digits
# (sklearn/datasets/data/digits.csv.gz) from PyPI, without installing it, for
# `unmask prepare --digits`. Skips it when it is already there; prints its path.
# Usage: scripts/digits-source.sh [DIR]   (DIR defaults to /var/tmp/unmask-digits)
set -euo pipefail

cache="${1:-/var/tmp/unmask-digits}"
# Pinned with its checksum in src/corpus/digits.rs (WHEEL_FILE, WHEEL_SHA256).
version="1.5.2"
wheel="scikit_learn-${version}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
mkdir -p "$cache"
if [ ! -f "$cache/$wheel" ]; then
    command -v pip3 >/dev/null 2>&1 || {
        sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get install -y --no-install-recommends python3-pip >/dev/null
    }
    echo "downloading $wheel" >&2
    pip3 download --quiet "scikit-learn==$version" --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_17_x86_64 -d "$cache" >&2
fi
echo "$cache/$wheel"
