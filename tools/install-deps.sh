#!/usr/bin/env bash
# Install what mpx needs from Debian's packages, only when something is missing.
set -euo pipefail
pkgs=(cmake g++ make pkg-config libuv1-dev libssl-dev libfmt-dev libgtest-dev libbenchmark-dev python3 python3-pytest binutils libboost-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
