#!/usr/bin/env bash
# The README's second command (npm test): set up, check formatting, lint and types,
# then run every vitest suite (unit, then integration with real sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# uWebSockets.js needs glibc >= 2.38; on older systems the tests run it under a private copy.
bash scripts/uws-glibc.sh >/dev/null
echo "test: biome (format + lint)"
npx biome check .
echo "test: typescript"
npx tsc -p tsconfig.json --noEmit
echo "test: vitest"
npx vitest run "$@"
