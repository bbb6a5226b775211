#!/usr/bin/env bash
# Builds the eBPF object(s) of auraed (docs/observe.md). Needs clang-14 and libbpf-dev (apt).
# Output: build/ebpf/*.bpf.o under the repository root (or $AURAE_EBPF_DIR).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${AURAE_EBPF_DIR:-$root/build/ebpf}"
clang="${CLANG:-clang-14}"
mkdir -p "$out"
for src in "$here"/*.bpf.c; do
  obj="$out/$(basename "${src%.c}").o"
  if [[ -f "$obj" && "$obj" -nt "$src" && "$obj" -nt "$0" ]]; then continue; fi
  "$clang" -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
    -Wall -Werror -c "$src" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
  echo "built $obj"
done
