#!/usr/bin/env bash
# Builds auraed's native helper, the per-executable shim (aurae-shim.c), with the system C
# compiler. Output: build/native/aurae-shim under the repository root (or $AURAE_NATIVE_DIR).
# Static, so that the same file runs on the host and inside guest images.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${AURAE_NATIVE_DIR:-$root/build/native}"
cc="${CC:-cc}"
mkdir -p "$out"
src="$here/aurae-shim.c"
bin="$out/aurae-shim"
if [[ -x "$bin" && "$bin" -nt "$src" && "$bin" -nt "$0" ]]; then exit 0; fi
"$cc" -std=c11 -Os -Wall -Wextra -Werror -static -o "$bin.tmp" "$src"
mv "$bin.tmp" "$bin"
echo "built $bin"
