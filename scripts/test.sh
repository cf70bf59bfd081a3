#!/usr/bin/env bash
# Sets up (idempotently) and runs the whole test suite against the real model, media and release binary:
# the tests exercise what ships (release, with -enable-testing for @testable imports).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
swift build -c release --build-tests -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
