#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian packages, a Python venv for the FUSE harness),
# builds, and runs every test target. This is the command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-build-deps.sh
scripts/install-test-deps.sh
swift build --build-tests
# Serially: the integration tests run several daemons with sub-second timings on a 2-core machine.
swift test --skip-build --disable-xctest --no-parallel "$@"
# The Debian package: build, contents, lintian, install into a throw-away root, systemd-analyze verify.
Tests/Packaging/test-deb.sh
