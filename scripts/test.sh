#!/usr/bin/env bash
# The README's second command (npm test): set up, check formatting, lint and types,
# then run every vitest suite (unit, then integration with real sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
# Test-only Debian packages, installed through setup.sh's installer (only when missing):
# real Redis servers for the Redis store suites (test/helpers/redis-servers.ts),
# Chromium for the web console's browser suites (test/browser/), and kubectl for
# rendering deploy/kubernetes (test/unit/deploy/), unless a kubectl is already there.
TEST_PACKAGES=(redis-server redis-tools redis-sentinel chromium fonts-dejavu-core)
command -v kubectl >/dev/null || TEST_PACKAGES+=(kubernetes-client)
SETUP_EXTRA_PACKAGES="${SETUP_EXTRA_PACKAGES:-} ${TEST_PACKAGES[*]}" bash scripts/setup.sh
# uWebSockets.js needs glibc >= 2.38; on older systems the tests run it under a private copy.
bash scripts/uws-glibc.sh >/dev/null
echo "test: biome (format + lint)"
npx biome check .
echo "test: typescript"
npx tsc -p tsconfig.json --noEmit
echo "test: vitest"
mkdir -p .cache
report=.cache/vitest-report.json
rm -f "$report"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI log reader understands.
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || echo "0 passed, 1 failed (no vitest report)"
exit "$status"
