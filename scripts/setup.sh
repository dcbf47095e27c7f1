#!/usr/bin/env bash
# Install what the server needs on a Debian machine, then build it. Idempotent and
# quick once done: it only installs what is missing.
#   bash scripts/setup.sh            system packages + npm dependencies + build
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# ---- Node.js ----
command -v node >/dev/null || die "Node.js 20.19 or newer is required (not found). On Debian: apt-get install nodejs npm, or use the NodeSource packages."
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js 20.19 or newer is required; found $(node --version)."
command -v npm >/dev/null || die "npm is required (not found). On Debian: apt-get install npm."

# ---- Debian packages ----
# bubblewrap: the sandbox; util-linux: setpriv (drop to SANDBOX_UID), prlimit;
# coreutils: stdbuf (live output of C-family programs); gcc: the agent's launcher and the C toolchain;
# python3: the Python toolchain (Debian's, under /usr, which sandboxes can see); openssl: test certificates.
PACKAGES=(bubblewrap util-linux coreutils gcc libc6-dev python3 openssl ca-certificates)
# More toolchains: SETUP_EXTRA_PACKAGES="golang-go rustc ..." bash scripts/setup.sh
read -r -a EXTRA <<<"${SETUP_EXTRA_PACKAGES:-}"
missing=()
for pkg in "${PACKAGES[@]}" "${EXTRA[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing packages: ${missing[*]} (no apt-get here: install them with your package manager)"
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}; run as root (sudo bash scripts/setup.sh) or: sudo apt-get install ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- npm dependencies ----
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# ---- build ----
say "building"
node scripts/build.mjs
