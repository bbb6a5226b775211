#!/usr/bin/env bash
# Builds auraed's native helper with the system C compiler: the per-executable shim
# (aurae-shim.c) and, in the same binary, the spawner that forks shims (spawner.c). Output: build/native/aurae-shim under the repository root (or $AURAE_NATIVE_DIR).
# Static, so that the same file runs on the host and inside guest images.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${AURAE_NATIVE_DIR:-$root/build/native}"
cc="${CC:-cc}"
mkdir -p "$out"
srcs=("$here/aurae-shim.c" "$here/spawner.c")
bin="$out/aurae-shim"
fresh=1
for src in "${srcs[@]}" "$0"; do [[ -x "$bin" && "$bin" -nt "$src" ]] || fresh=0; done
if [[ $fresh = 1 ]]; then exit 0; fi
"$cc" -std=gnu11 -Os -Wall -Wextra -Werror -static -o "$bin.tmp" "${srcs[@]}"
mv "$bin.tmp" "$bin"
echo "built $bin"
