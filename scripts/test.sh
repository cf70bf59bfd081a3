#!/usr/bin/env bash
# Sets up (idempotently) and runs the whole test suite against the real model, media and binary.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
