#!/usr/bin/env bash
# Sets up (idempotently) and runs the whole test suite against the real model, media and release binary:
# the tests exercise what ships (release, with -enable-testing for @testable imports).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
swift build -c release --build-tests -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
# A short bounded run of each libFuzzer harness (fuzz/README.md), for the whole suite only (not with --filter and such).
# SIGHTLINE_FUZZ_SECONDS sets the time per harness; 0 skips them.
if [ "$#" -eq 0 ] && [ "${SIGHTLINE_FUZZ_SECONDS:-60}" != 0 ]; then
    bash scripts/fuzz.sh "${SIGHTLINE_FUZZ_SECONDS:-60}"
fi
