#!/usr/bin/env bash
# The uWebSockets.js binaries need GLIBC_2.38 (only for __isoc23_sscanf/strtol/strtoul).
# On an older glibc (Debian 12 has 2.36) node can still load them when it runs under a
# newer glibc loader. This script fetches Debian trixie's libc6 into a private folder
# (.cache/glibc-uws, git-ignored) with isolated apt state, touching nothing of the system.
#
# Idempotent:
#   - system glibc >= 2.38: does nothing, prints nothing;
#   - folder already there: fetches nothing;
#   - otherwise: fetches libc6 from trixie and unpacks it.
# On success with a private glibc, the LAST line of stdout is the command prefix to put
# before the node binary, e.g.
#   /repo/.cache/glibc-uws/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path <dirs>
# Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="${UWS_GLIBC_DIR:-$ROOT/.cache/glibc-uws}"
NEED_MAJOR=2
NEED_MINOR=38

glibc_version() {
  local v
  v="$(getconf GNU_LIBC_VERSION 2>/dev/null || true)" # "glibc 2.36"
  v="${v##* }"
  if [[ -z "$v" ]]; then
    v="$(ldd --version 2>/dev/null | head -n1 | grep -oE '[0-9]+\.[0-9]+$' || true)"
  fi
  printf '%s' "$v"
}

SYS="$(glibc_version)"
if [[ -z "$SYS" ]]; then
  echo "uws-glibc: not a glibc system (musl?); a private glibc loader would not help" >&2
  exit 0
fi
major="${SYS%%.*}"
minor="${SYS#*.}"
minor="${minor%%.*}"
if ((major > NEED_MAJOR || (major == NEED_MAJOR && minor >= NEED_MINOR))); then
  exit 0
fi

case "$(uname -m)" in
x86_64)
  TRIPLET=x86_64-linux-gnu
  LOADER=ld-linux-x86-64.so.2
  ;;
aarch64)
  TRIPLET=aarch64-linux-gnu
  LOADER=ld-linux-aarch64.so.1
  ;;
*)
  echo "uws-glibc: unsupported architecture $(uname -m)" >&2
  exit 0
  ;;
esac

L="$D/root/usr/lib/$TRIPLET"
prefix() {
  printf '%s --library-path %s\n' "$L/$LOADER" "$L:/usr/lib/$TRIPLET:/lib/$TRIPLET"
}

if [[ -x "$L/$LOADER" ]]; then
  prefix
  exit 0
fi

command -v apt-get >/dev/null || {
  echo "uws-glibc: glibc $SYS < 2.38 and no apt-get to fetch a newer one" >&2
  exit 1
}

mkdir -p "$D"
# One fetch at a time, even when several test workers ask at once.
exec 9>"$D/.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -x "$L/$LOADER" ]]; then
  prefix
  exit 0
fi

echo "uws-glibc: system glibc $SYS < 2.38; fetching Debian trixie libc6 into $D" >&2
mkdir -p "$D/parts" "$D/lists/partial" "$D/archives/partial"
printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$D/parts/trixie.sources"
O=(
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::Etc::SourceParts=$D/parts"
  -o "Dir::State::Lists=$D/lists"
  -o "Dir::Cache=$D/cache"
  -o "Dir::Cache::Archives=$D/archives"
  -o "Dir::State::Status=/dev/null"
  -o "APT::Architecture=$(dpkg --print-architecture)"
)
mkdir -p "$D/cache"
apt-get "${O[@]}" -q update >&2
rm -f "$D"/libc6_*.deb
(cd "$D" && apt-get "${O[@]}" -q download libc6 >&2)
deb="$(ls "$D"/libc6_*.deb | head -n1)"
tmp="$D/root.tmp.$$"
rm -rf "$tmp"
dpkg-deb -x "$deb" "$tmp"
rm -rf "$D/root"
mv "$tmp" "$D/root"
if [[ ! -x "$L/$LOADER" ]]; then
  echo "uws-glibc: $L/$LOADER missing after unpacking $deb" >&2
  exit 1
fi
echo "uws-glibc: ready ($(basename "$deb"))" >&2
prefix
