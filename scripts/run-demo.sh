#!/usr/bin/env bash
# Builds kvmha and runs the daemon on its embedded default: a local directory (./.kvmha-demo/pool) as the
# pool, host id 127.0.0.1, libvirt's test driver. Beats show in the log and under .kvmha-demo/pool/KVMHA.
# Extra arguments go to `kvmha serve` (e.g. --interval 1s). Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-build-deps.sh
swift build --product kvmha
exec .build/debug/kvmha serve --demo "$@"
