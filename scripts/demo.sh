#!/usr/bin/env bash
# Sets up (idempotently), builds in release and runs detection on the bundled sample video,
# printing one JSON line per frame.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
swift build -c release --product sightline >&2
exec .build/release/sightline detect "$@" .cache/media/vtest.avi
