#!/usr/bin/env bash
# Installs what is missing, builds the page and serves it on http://127.0.0.1:8080/ (Ctrl-C stops).
# Extra arguments go to `trunk serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
. scripts/env.sh
exec trunk serve "$@"
