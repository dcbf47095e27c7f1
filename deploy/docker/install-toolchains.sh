#!/usr/bin/env bash
# Install the sandbox toolchains into an image (Dockerfile.sandbox, and the server-local target of
# Dockerfile.server), from scripts/setup.sh's own lists, so that the images and a host set up by
# scripts/setup.sh carry the same Debian packages:
#   - the languages' packages: `bash setup.sh --language-packages`, which honours SETUP_LANGUAGES
#     (the list that test/unit/setup-packages.test.ts keeps equal to protocol/languages.ts);
#   - TypeScript's @types/node: setup.sh's TS_NODE_TYPES and TS_NODE_TYPES_DIR, installed under the
#     same condition as setup.sh does;
#   - with --host-packages, also setup.sh's PACKAGES (bubblewrap, util-linux, coreutils, gcc...):
#     what the server itself needs to run local bubblewrap sandboxes.
# setup.sh itself cannot be run in an image without the checkout (it always ends with npm ci and a
# build), hence this reader of its lists.
#
#   bash install-toolchains.sh [--host-packages] [--print] PATH/TO/scripts/setup.sh
#   SETUP_LANGUAGES=py,js,bash bash install-toolchains.sh ...   only these languages (default: all)
#   SETUP_EXTRA_PACKAGES="r-recommended" bash install-toolchains.sh ...   more Debian packages
#   --print: print the Debian packages it would install, one a line, and stop (the unit test uses it)
set -euo pipefail

usage="usage: install-toolchains.sh [--host-packages] [--print] PATH/TO/setup.sh"
host_packages=0
print_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --host-packages) host_packages=1 ;;
    --print) print_only=1 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
setup=${1:?$usage}
[ -f "$setup" ] || { echo "install-toolchains: $setup not found" >&2; exit 1; }

# ---- the languages' packages, as setup.sh selects them (SETUP_LANGUAGES) and prints them ("code: pkg pkg...") ----
mapfile -t lines < <(bash "$setup" --language-packages)
[ "${#lines[@]}" -gt 0 ] || { echo "install-toolchains: $setup --language-packages printed nothing" >&2; exit 1; }
packages=()
want_ts=0
for line in "${lines[@]}"; do
  read -r -a pkgs <<<"${line#*:}"
  packages+=("${pkgs[@]}")
  [ "${line%%:*}" = ts ] && want_ts=1
done

# ---- setup.sh's system packages and the TypeScript declarations (single-line assignments there) ----
PACKAGES=()
TS_NODE_TYPES=""
TS_NODE_TYPES_DIR=""
eval "$(grep -E '^(PACKAGES=\(.*\)|TS_NODE_TYPES=[^ ]+|TS_NODE_TYPES_DIR=[^ ]+)$' "$setup")"
[ "${#PACKAGES[@]}" -gt 0 ] && [ -n "$TS_NODE_TYPES" ] && [ -n "$TS_NODE_TYPES_DIR" ] \
  || { echo "install-toolchains: PACKAGES, TS_NODE_TYPES or TS_NODE_TYPES_DIR not found in $setup" >&2; exit 1; }
if [ "$host_packages" = 1 ]; then packages+=("${PACKAGES[@]}"); fi
read -r -a extra <<<"${SETUP_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}" ca-certificates)

if [ "$print_only" = 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi
echo "install-toolchains: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# No recommends, as setup.sh: each toolchain was checked to compile and run its programs without them.
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

if [ "$want_ts" = 1 ] && [ ! -d /usr/share/nodejs/@types/node ] && [ ! -f "$TS_NODE_TYPES_DIR/node_modules/@types/node/package.json" ]; then
  echo "install-toolchains: $TS_NODE_TYPES into $TS_NODE_TYPES_DIR"
  mkdir -p "$TS_NODE_TYPES_DIR"
  DO_NOT_TRACK=1 npm install --prefix "$TS_NODE_TYPES_DIR" --no-audit --no-fund --no-save --loglevel=error "$TS_NODE_TYPES"
fi

apt-get clean
rm -rf /var/lib/apt/lists/* /root/.npm
