#!/usr/bin/env bash
# Sets up (idempotently), builds in release and runs detection on the bundled sample video,
# printing one JSON line per frame.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/setup.sh
# The same build as `make install` (static Swift runtime, .build/), so the two share it.
make --no-print-directory build >&2
exec .build/release/sightline detect "$@" .cache/media/vtest.avi
