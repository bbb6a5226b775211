#!/usr/bin/env bash
# Builds auraed's native helpers with the system C compiler, into build/native/ under the
# repository root (or $AURAE_NATIVE_DIR):
# - aurae-shim: the per-executable shim (aurae-shim.c) and, in the same binary, the spawner that
#   forks shims (spawner.c) and the first program of isolated cells' namespace holders
#   (holder-init.c). Static, so that the same file runs on the host and inside guest images.
# - liblog-item-wire.so: the output streams' line encoder (src/daemon/observe/log-item-wire.c),
#   loaded through koffi; optional for the daemon, which encodes in TypeScript without it.
# Each is rebuilt only when a source (or this script) is newer.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${AURAE_NATIVE_DIR:-$root/build/native}"
cc="${CC:-cc}"
mkdir -p "$out"

# stale TARGET SOURCES...: true when TARGET is missing or older than a source or this script
stale() {
  local target="$1" source
  shift
  for source in "$@" "$0"; do [[ -e "$target" && "$target" -nt "$source" ]] || return 0; done
  return 1
}

bin="$out/aurae-shim"
srcs=("$here/aurae-shim.c" "$here/spawner.c" "$here/holder-init.c")
if stale "$bin" "${srcs[@]}"; then
  "$cc" -std=gnu11 -Os -Wall -Wextra -Werror -static -o "$bin.tmp" "${srcs[@]}"
  mv "$bin.tmp" "$bin"
  echo "built $bin"
fi

lib="$out/liblog-item-wire.so"
src="$root/src/daemon/observe/log-item-wire.c"
if stale "$lib" "$src"; then
  "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$lib.tmp" "$src"
  mv "$lib.tmp" "$lib"
  echo "built $lib"
fi
