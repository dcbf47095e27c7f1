#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the server
# with its embedded defaults (local bubblewrap sandboxes, in-process stores).
set -euo pipefail
cd "$(dirname "$0")/.."
# UP_SKIP_SETUP=1: dist/ and the packages are there already (the test suite's run of this script).
if [ "${UP_SKIP_SETUP:-0}" != "1" ]; then
  bash scripts/setup.sh
fi
exec node dist/server.mjs serve
