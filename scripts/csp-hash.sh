#!/usr/bin/env bash
# Trunk post-build hook: the page's Content-Security-Policy allows scripts from the page's origin
# only, plus Trunk's one inline loader. This writes that loader's SHA-256 in place of the
# `sha256-TRUNK_LOADER` placeholder of www/index.html. Needs only coreutils and awk.
set -euo pipefail
html="${TRUNK_STAGING_DIR:?run by trunk}/index.html"
body=$(mktemp)
trap 'rm -f "$body"' EXIT
# The text between <script type="module"> and </script>, byte for byte (what the browser hashes).
awk 'BEGIN { RS = "</script>" }
     index($0, "<script type=\"module\">") {
         sub(/^.*<script type="module">/, "")
         printf "%s", $0
         exit
     }' "$html" >"$body"
[ -s "$body" ] || { echo "csp-hash: no inline module script in $html" >&2; exit 1; }
hex=$(sha256sum "$body" | cut -d' ' -f1)
b64=$(printf "$(printf '%s' "$hex" | sed 's/../\\x&/g')" | base64 -w0)
grep -q "sha256-TRUNK_LOADER" "$html" || { echo "csp-hash: no placeholder in $html" >&2; exit 1; }
sed -i "s|sha256-TRUNK_LOADER|sha256-$b64|" "$html"
