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

# Test inputs made here, not committed (git holds no model files):
# - the model fuzzer's seed graphs (a tiny SSD graph and issue 8's hostile variants), which the suite also replays;
python3 fuzz/make_graph_seeds.py fuzz/corpus/model
# - small graphs of the SSD family exported by the TF Object Detection API, with TensorFlow's outputs for them
#   (ModelFamilyTests). Made once per version of the script, in pinned environments, so they are the same every time.
ODAPI_FIXTURES=.cache/fixtures/odapi
ODAPI_STAMP=$(sha256sum scripts/make_odapi_fixtures.py | cut -d' ' -f1)
if [ "$(cat "$ODAPI_FIXTURES/.complete" 2>/dev/null)" != "$ODAPI_STAMP" ]; then
    if [ ! -f .cache/venv-odapi/.complete ]; then
        echo "test: installing TensorFlow and the Object Detection API's dependencies into .cache/venv-odapi" >&2
        rm -rf .cache/venv-odapi
        python3 -m venv .cache/venv-odapi
        .cache/venv-odapi/bin/pip install -q --disable-pip-version-check tensorflow-cpu==2.21.0 tf-keras==2.21.0 \
            tf-slim==1.1.0 numpy==2.4.6 protobuf==7.36.2 scipy==1.17.1 contextlib2==21.6.0 six==1.17.0 \
            matplotlib==3.11.2 pillow==13.0.0 >&2
        touch .cache/venv-odapi/.complete
    fi
    rm -rf "$ODAPI_FIXTURES.part"
    timed .cache/venv-odapi/bin/python scripts/make_odapi_fixtures.py --work .cache/odapi --out-dir "$ODAPI_FIXTURES.part" >&2
    echo "$ODAPI_STAMP" > "$ODAPI_FIXTURES.part/.complete"
    rm -rf "$ODAPI_FIXTURES" && mv "$ODAPI_FIXTURES.part" "$ODAPI_FIXTURES"
fi
timed swift build -c release --scratch-path .build-tests --build-tests -Xswiftc -enable-testing
# The failures are repeated after the run's own output, so that the end of a long log names them.
TEST_LOG=$(mktemp)
trap 'rm -f "$TEST_LOG"' EXIT
if ! timed swift test -c release --scratch-path .build-tests -Xswiftc -enable-testing --skip-build "$@" 2>&1 | tee "$TEST_LOG"; then
    echo "test: XCTest failed; its failures:" >&2
    grep -E "(^|: )error: |^Test Case '.*' failed|Fatal error|Exited with (signal|unexpected)" "$TEST_LOG" | cut -c1-1500 >&2
    exit 1
fi
if [ $# -eq 0 ]; then
    # A short bounded run of each libFuzzer harness (fuzz/README.md). SIGHTLINE_FUZZ_SECONDS sets the time per
    # harness; 0 skips them.
    if [ "${SIGHTLINE_FUZZ_SECONDS:-60}" != 0 ]; then timed bash scripts/fuzz.sh "${SIGHTLINE_FUZZ_SECONDS:-60}"; fi
    timed tests/install/no-toolchain.sh
    timed tests/vm/run.sh
fi
