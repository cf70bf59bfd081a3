#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/Sources, ASan + libFuzzer, in .build-fuzz) and runs each over its corpus.
#   scripts/fuzz.sh [SECONDS_EACH] [HARNESS...]     harnesses: model labels sidecar config (default: all)
# Findings land in fuzz/findings/<harness>/; new interesting inputs in .build-fuzz/corpus/<harness>/ (not committed:
# copy the ones worth keeping into fuzz/corpus/<harness>/, which the normal test suite replays).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
seconds="${1:-60}"
shift || true
harnesses=("${@:-model labels sidecar config}")
read -r -a harnesses <<< "${harnesses[*]}"

product() { case "$1" in model) echo FuzzModel ;; labels) echo FuzzLabels ;; sidecar) echo FuzzSidecar ;; config) echo FuzzConfig ;;
    *) echo "fuzz.sh: unknown harness '$1' (model, labels, sidecar, config)" >&2; exit 2 ;; esac; }

# SwiftPM links libFuzzer with --sanitize fuzzer but instruments only for ASan; -sanitize=fuzzer adds coverage.
build=(swift build --scratch-path .build-fuzz -c debug --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address)
for harness in "${harnesses[@]}"; do
    SIGHTLINE_FUZZ=1 "${build[@]}" --product "$(product "$harness")"
done
bin="$(SIGHTLINE_FUZZ=1 "${build[@]}" --show-bin-path)"
python3 fuzz/make_graph_seeds.py fuzz/corpus/model  # the model seeds are written, not committed

status=0
for harness in "${harnesses[@]}"; do
    work=".build-fuzz/corpus/$harness" findings="fuzz/findings/$harness"
    mkdir -p "$work" "$findings"
    echo "fuzz.sh: $harness for ${seconds}s"
    # -rss_limit_mb bounds memory per input (a harness must refuse oversized models before allocating them); -timeout is
    # a hang guard: the largest model the limits allow (a 2048x2048 input) takes seconds to import under ASan.
    "$bin/$(product "$harness")" "$work" "fuzz/corpus/$harness" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -max_len=65536 -timeout=60 -artifact_prefix="$findings/" -print_final_stats=1 2>&1 | tail -n 25 || status=1
done
exit "$status"
