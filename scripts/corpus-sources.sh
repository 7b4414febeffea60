#!/usr/bin/env bash
# Fetches the corpus sources of `unmask prepare` as Debian packages and unpacks them, without
# installing them (no R, no SWORD): Jane Austen's novels (r-cran-janeaustenr) and the World
# English Bible (sword-text-web). Skips what is already there.
# Usage: scripts/corpus-sources.sh [DIR]   (DIR defaults to /var/tmp/unmask-corpus)
# Prints the two source folders, Austen's then the Bible's (the defaults of
# `unmask prepare --austen … --bible …` when DIR is the default).
set -euo pipefail

cache="${1:-/var/tmp/unmask-corpus}"
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# package, then the folder inside it that `unmask prepare` reads (src/corpus/mod.rs).
packages=(r-cran-janeaustenr sword-text-web)
folders=(usr/lib/R/site-library/janeaustenr/data usr/share/sword/modules/texts/ztext/engWEB2015eb)

have_deb() { compgen -G "$cache/${1}_*.deb" >/dev/null; }

missing=()
for p in "${packages[@]}"; do have_deb "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "downloading ${missing[*]}" >&2
    # apt-get download writes into the current folder; as root it warns that it cannot drop
    # privileges to _apt there, which is harmless.
    (cd "$cache" && apt-get download "${missing[@]}" >/dev/null 2>&1) \
        || { $sudo apt-get update >/dev/null && (cd "$cache" && apt-get download "${missing[@]}" >/dev/null); }
fi

for i in "${!packages[@]}"; do
    p=${packages[$i]}
    target="$cache/$p"
    if [ ! -d "$target/${folders[$i]}" ]; then
        debs=("$cache/${p}"_*.deb)
        rm -rf "$target.tmp"
        dpkg-deb -x "${debs[-1]}" "$target.tmp"
        rm -rf "$target"
        mv "$target.tmp" "$target"
    fi
    echo "$target/${folders[$i]}"
done
