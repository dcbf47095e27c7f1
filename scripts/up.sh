#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the server
# with its embedded defaults (local bubblewrap sandboxes, in-process stores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/server.mjs serve
