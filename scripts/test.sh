#!/usr/bin/env bash
# Sets up (idempotently) and runs the whole test suite against the real model, media and release binary:
#   1. unit and integration tests: release with -enable-testing (for @testable imports), in their own
#      scratch path .build-tests/, so they never invalidate the shipped build in .build/;
#   2. a short bounded run of each libFuzzer harness (scripts/fuzz.sh, in .build-fuzz/);
#   3. the shipped build (`make install`, Swift runtime linked statically) run with /opt/swift out of reach;
#   4. the VM test: that install under a real systemd with a real V4L2 driver (tests/vm/run.sh).
# Arguments go to `swift test` (e.g. --filter X) and then only step 1 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
timed() { local start=$SECONDS; "$@"; echo "test: $* took $((SECONDS - start)) s" >&2; }
timed swift build -c release --scratch-path .build-tests --build-tests -Xswiftc -enable-testing
timed swift test -c release --scratch-path .build-tests -Xswiftc -enable-testing --skip-build "$@"
if [ $# -eq 0 ]; then
    # A short bounded run of each libFuzzer harness (fuzz/README.md). SIGHTLINE_FUZZ_SECONDS sets the time per
    # harness; 0 skips them.
    if [ "${SIGHTLINE_FUZZ_SECONDS:-60}" != 0 ]; then timed bash scripts/fuzz.sh "${SIGHTLINE_FUZZ_SECONDS:-60}"; fi
    timed tests/install/no-toolchain.sh
    timed tests/vm/run.sh
fi
