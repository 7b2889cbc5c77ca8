#!/usr/bin/env bash
# Installs the Debian packages that building kvmha needs (C libraries it links and pkg-config).
# Idempotent: apt-get runs only when something is missing.
set -euo pipefail

packages=(pkg-config libvirt-dev libnfs-dev)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
