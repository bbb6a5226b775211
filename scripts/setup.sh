#!/usr/bin/env bash
# Installs everything the daemon and its tests need on a fresh Debian 12 machine (as root):
# Debian packages, then the npm packages (npm ci also builds dist/ through `prepare`), then the
# native parts (aurae-shim and the eBPF object of the signal stream). Safe to run again: it only adds what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
APT_PACKAGES=(
  iproute2        # ip: namespaces and links in tests
  procps          # ps, pgrep
  util-linux      # unshare, nsenter, setpriv: namespace holders of isolated cells
  catatonit       # the init holding an isolated cell's namespaces (reaps orphans there)
  libbpf1         # loaded through koffi by the signal stream
  libbpf-dev      # headers to build the eBPF object
  lld-14          # wasm-ld: rebuilds the SDK's WebAssembly loop (src/client/wasm/build.sh) in its staleness test
  clang-14        # compiles the eBPF object (src/platform/ebpf/build.sh)
  gcc             # compiles aurae-shim, the per-executable shim (src/platform/native/build.sh)
  libc6-dev       # its headers and static libc
  qemu-system-x86 # micro-VMs (TCG here; KVM where it works)
  busybox-static  # guest images and OCI bundles for the peers in bench/
  cpio            # cross-checks the initramfs writer in tests
  e2fsprogs       # mkfs.ext4: the drive image the VM tests mount in a guest
  binutils        # strip: a smaller Node in guest images
  runc            # bench peer: runc run of a busybox bundle
  crun            # bench peer where it runs (HOST.md)
  zsh             # checks the zsh completion script
)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # The guest kernel package for the VM tests (buildVmImage reuses it from this cache); the
  # package lists may be missing on a machine that already had every package above.
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
  if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
  fi
  debs=.cache/vm-test/vm-images/debs
  if ! ls "$debs/${kpkg}"_*.deb >/dev/null 2>&1; then
    mkdir -p "$debs" && tmp=$(mktemp -d) && chmod 0777 "$tmp"
    (cd "$tmp" && apt-get download -q "$kpkg") && mv "$tmp"/*.deb "$debs"/
    rm -rf "$tmp"
  fi
else
  echo "setup: not root, skipping Debian packages (${APT_PACKAGES[*]})" >&2
fi
npm ci --no-audit --no-fund
bash src/platform/native/build.sh
bash src/platform/ebpf/build.sh
