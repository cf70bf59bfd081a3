#!/usr/bin/env bash
# Written by the Sightline team. oneDNN 2.6 (Debian's libdnnl-dev, what Sightline links) against oneDNN 3.2 (PyPI's
# CPU-only build: onednn-cpu-gomp and onednn-devel-cpu-gomp 2023.2.0, GNU OpenMP, no SYCL runtime), on the
# convolutions Sightline's own int8 and bf16 passes run, one thread, alternated; then, on 2.6, what choosing each
# layer's fastest implementation would gain (onednn_impls.c). Downloads the wheels once into .cache/onednn-3.2.
# Usage: scripts/onednn_versions.sh [ROUNDS]   (BENCH_PREFIX='chrt -f 50' on a shared machine, as bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
ROUNDS=${1:-3}
CC=${CC:-clang}  # the Swift toolchain's, so nothing beyond what setup.sh installs is needed
bash scripts/setup.sh >&2
read -r -a P <<< "${BENCH_PREFIX:-}"
V3=.cache/onednn-3.2
if [ ! -f "$V3/.complete" ]; then
    rm -rf "$V3" && mkdir -p "$V3/wheels"
    python3 -m pip download -q --no-deps -d "$V3/wheels" onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0 >&2
    for w in "$V3"/wheels/*.whl; do python3 -m zipfile -e "$w" "$V3/unpacked"; done
    mkdir -p "$V3/include" "$V3/lib"
    cp -r "$V3"/unpacked/onednn_devel_cpu_gomp-*.data/data/include/. "$V3/include/"
    cp -a "$V3"/unpacked/onednn_cpu_gomp-*.data/data/lib/libdnnl.so* "$V3/lib/"
    touch "$V3/.complete"
fi
swift build -c release --product sightline >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$CC" -O2 -o "$out/v26" scripts/onednn_versions.c -ldnnl
"$CC" -O2 -I"$V3/include" -o "$out/v32" scripts/onednn_versions.c -L"$PWD/$V3/lib" -ldnnl -Wl,-rpath,"$PWD/$V3/lib"
"$CC" -O2 -o "$out/impls" scripts/onednn_impls.c -ldnnl
export OMP_NUM_THREADS=1
for p in int8 bf16; do
    ONEDNN_VERBOSE=1 .build/release/sightline bench --threads 1 --precision "$p" --iterations 3 > "$out/$p.log"
    python3 scripts/onednn_pass.py "$out/$p.log" > "$out/$p.layers"
done
echo "| round | precision | oneDNN 2.6 median ms | oneDNN 3.2 median ms | 3.2 / 2.6 |"
echo "|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
    for p in int8 bf16; do
        a=$("${P[@]}" "$out/v26" "$out/$p.layers" 400 | sed 's/.*"median_ms":\([0-9.]*\).*/\1/')
        b=$("${P[@]}" "$out/v32" "$out/$p.layers" 400 | sed 's/.*"median_ms":\([0-9.]*\).*/\1/')
        echo "| $r | $p | $a | $b | $(python3 -c "print(f'{$b/$a:.3f}')") |"
    done
done
echo
echo "Per-layer fastest implementation on 2.6 (int8), against Sightline's choice:"
"${P[@]}" "$out/impls" "$out/int8.layers" 60 | grep -E "^(isolated|round)"
