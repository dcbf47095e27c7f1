#!/usr/bin/env bash
# Install what the server needs on a Debian machine, then build it. Idempotent and
# quick once done: it only installs what is missing.
#   bash scripts/setup.sh                          system packages + every language's toolchain + npm dependencies + build
#   SETUP_LANGUAGES=py,js,c bash scripts/setup.sh  only these languages' toolchains
#   SETUP_EXTRA_PACKAGES="pkg ..." bash scripts/setup.sh  more Debian packages
#   bash scripts/setup.sh --language-packages      print "code: packages" for each language asked for (all by default), and stop
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# ---- the language toolchains ----
# The Debian packages of each language, as in debianPackages of protocol/languages.ts
# (test/unit/setup-packages.test.ts fails when the two disagree). Everything sandboxes
# run must live under the host /usr, so toolchains come from Debian, never from
# pyenv, rustup or the like. js needs nothing more than the Node.js checked below.
LANGUAGE_PACKAGES=(
  "py: python3 python3-numpy python3-pandas python3-matplotlib python3-scipy python3-sklearn python3-cloudpickle python3-pip"
  "js:"
  "ts: node-typescript"
  "go: golang-go"
  "java: default-jdk-headless"
  "c: gcc libc6-dev"
  "cpp: g++"
  "php: php-cli"
  "rs: rustc"
  "r: r-base-core"
  "f90: gfortran"
  "d: ldc"
  "bash: bash"
)
# @types/node for TypeScript programs: Debian ships it only inside its own nodejs
# package (/usr/share/nodejs/@types/node), which a Node.js from elsewhere replaces.
# This version still supports Debian 12's TypeScript 4.8.
TS_NODE_TYPES="@types/node@20.11.25"
TS_NODE_TYPES_DIR=/usr/local/lib/code-interpreter/typescript


# The languages asked for (SETUP_LANGUAGES=py,js,...; default: all) and their packages.
all_codes=()
for entry in "${LANGUAGE_PACKAGES[@]}"; do all_codes+=("${entry%%:*}"); done
IFS=', ' read -r -a wanted <<<"${SETUP_LANGUAGES:-${all_codes[*]}}"
language_packages=()
selected_entries=()
want_ts=0
for code in "${wanted[@]}"; do
  [ -n "$code" ] || continue
  found=0
  for entry in "${LANGUAGE_PACKAGES[@]}"; do
    if [ "${entry%%:*}" = "$code" ]; then
      found=1
      selected_entries+=("$entry")
      read -r -a pkgs <<<"${entry#*:}"
      language_packages+=("${pkgs[@]}")
    fi
  done
  [ "$found" = 1 ] || die "SETUP_LANGUAGES: unknown language '$code' (known: ${all_codes[*]})"
  [ "$code" = ts ] && want_ts=1
done
# --language-packages: print "code: packages" of the languages asked for (all by default), and stop.
if [ "${1:-}" = "--language-packages" ]; then
  printf '%s\n' "${selected_entries[@]}"
  exit 0
fi

# ---- Node.js ----
command -v node >/dev/null || die "Node.js 20.19 or newer is required (not found). On Debian: apt-get install nodejs npm, or use the NodeSource packages."
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js 20.19 or newer is required; found $(node --version)."
command -v npm >/dev/null || die "npm is required (not found). On Debian: apt-get install npm."

# ---- Debian packages ----
# bubblewrap: the sandbox; util-linux: setpriv (drop to SANDBOX_UID), prlimit;
# coreutils: stdbuf (live output of C-family programs); gcc: the agent's launcher;
# openssl: test certificates; python3-seccomp: compiles the sandboxes' syscall filter (libseccomp);
# e2fsprogs, mount: the size-limited package caches (SKILL_DEPS_MAX_MB: mkfs.ext4, mount -o loop).
PACKAGES=(bubblewrap util-linux coreutils gcc libc6-dev openssl ca-certificates python3-seccomp e2fsprogs mount)
read -r -a EXTRA <<<"${SETUP_EXTRA_PACKAGES:-}"
missing=()
# One dpkg-query for all: the quick path when everything is there.
mapfile -t installed < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' 2>/dev/null | awk '$2 == "installed" { print $1 }')
declare -A have=()
for pkg in "${installed[@]}"; do have[$pkg]=1; done
declare -A seen=()
for pkg in "${PACKAGES[@]}" "${language_packages[@]}" "${EXTRA[@]}"; do
  [ -n "${seen[$pkg]:-}" ] && continue
  seen[$pkg]=1
  [ -n "${have[$pkg]:-}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing packages: ${missing[*]} (no apt-get here: install them with your package manager)"
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}; run as root (sudo bash scripts/setup.sh) or: sudo apt-get install ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No recommends: each toolchain above was checked to compile and run its programs without them.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- TypeScript's Node.js declarations ----
if [ "$want_ts" = 1 ] && [ ! -d /usr/share/nodejs/@types/node ] && [ ! -f "$TS_NODE_TYPES_DIR/node_modules/@types/node/package.json" ]; then
  [ "$(id -u)" -eq 0 ] || die "TypeScript needs $TS_NODE_TYPES in $TS_NODE_TYPES_DIR; run as root"
  say "installing $TS_NODE_TYPES into $TS_NODE_TYPES_DIR"
  mkdir -p "$TS_NODE_TYPES_DIR"
  npm install --prefix "$TS_NODE_TYPES_DIR" --no-audit --no-fund --no-save --loglevel=error "$TS_NODE_TYPES"
fi

# ---- npm dependencies ----
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing npm dependencies"
  # No install scripts: nothing we depend on needs one (esbuild, biome and uWS ship prebuilt binaries), and
  # some dev dependencies' scripts send telemetry (reova, under @librechat/agents). DO_NOT_TRACK for the rest.
  DO_NOT_TRACK=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# ---- build ----
say "building"
node scripts/build.mjs
