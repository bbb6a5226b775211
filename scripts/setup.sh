#!/usr/bin/env bash
# Installs everything the daemon and its tests need on a fresh Debian 12 machine (as root):
# Debian packages, then the npm packages (npm ci also builds dist/ through `prepare`).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
APT_PACKAGES=(
  iproute2      # ip: namespaces and links in tests
  procps        # ps, pgrep
  util-linux    # unshare, nsenter, setpriv
)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup: not root, skipping Debian packages (${APT_PACKAGES[*]})" >&2
fi
npm ci --no-audit --no-fund
