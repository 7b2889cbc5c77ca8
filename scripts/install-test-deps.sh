#!/usr/bin/env bash
# Installs what the integration-test harness needs on Debian 12, idempotently:
#   - fuse + libfuse2 (fusermount, libfuse.so.2) for Tests/Harness/freezefs/freezefs.py
#   - faketime for clock-skew tests
#   - a venv at $REPO/.venv with fusepy, made with the `python3` first on PATH
# apt-get runs only for packages that are missing; `apt-get update` only if that install fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
FUSEPY_VERSION="3.0.1"

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

packages=(fuse libfuse2 faketime python3-venv)
command -v python3 >/dev/null 2>&1 || packages+=(python3)

missing=()
for package in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
        # A fresh machine may have no package lists yet.
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

# fusepy loads libfuse.so.2 through ctypes at import time, so importing it checks both.
fusepy_works() {
    [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c "import fuse, importlib.metadata as m, sys; sys.exit(m.version('fusepy') != '$FUSEPY_VERSION')" \
            >/dev/null 2>&1
}

if ! fusepy_works; then
    echo "install-test-deps: creating $VENV with $(command -v python3) ($(python3 --version 2>&1))"
    python3 -m venv --clear "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "fusepy==$FUSEPY_VERSION"
    if ! fusepy_works; then
        echo "install-test-deps: fusepy installed but cannot load libfuse.so.2:" >&2
        "$VENV/bin/python" -c "import fuse" >&2 || true
        exit 1
    fi
fi

[ -e /dev/fuse ] || echo "install-test-deps: warning: /dev/fuse is missing; FUSE tests cannot mount" >&2

echo "install-test-deps: ok (fusepy $FUSEPY_VERSION in $VENV, $(command -v fusermount), $(command -v faketime))"
