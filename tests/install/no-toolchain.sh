#!/usr/bin/env bash
# The shipped binary is self-contained: `make install` into a staging root, then, in a private mount
# namespace with an empty directory mounted over /opt/swift (the toolchain), run the installed binary
# by name from another directory: it must start, find its installed model through /proc/self/exe and
# detect the people in a known photo. One PASS/FAIL line per check; non-zero exit if any fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
STAGE=$(mktemp -d /tmp/sightline-install.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
start=$SECONDS
make --no-print-directory install DESTDIR="$STAGE/root" PREFIX=/usr/local >"$STAGE/make.log" 2>&1 \
    || { tail -n 40 "$STAGE/make.log" >&2; echo "FAIL make install"; exit 1; }
echo "install: make install took $((SECONDS - start)) s" >&2
BIN="$STAGE/root/usr/local/bin/sightline"
mkdir -p "$STAGE/empty" "$STAGE/cwd"
cp .cache/media/basketball1.png "$STAGE/cwd/photo.png"
failures=0
check() {  # check NAME COMMAND...
    local name=$1; shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
no_swift_libraries() { ! ldd "$BIN" | grep -i swift; }
# In the namespace: /opt/swift is empty, PATH has only the installed bin and the system's.
without_toolchain() {
    unshare -m /bin/sh -c 'mount --bind "$0" /opt/swift && cd "$1" && shift && exec "$@"' \
        "$STAGE/empty" "$STAGE/cwd" env PATH="$(dirname "$BIN"):/usr/bin:/bin" "$@"
}
runs_without_toolchain() { without_toolchain sightline --help >/dev/null; }
detects_with_installed_model() {
    without_toolchain sightline detect photo.png > "$STAGE/records" 2>"$STAGE/stderr" || { cat "$STAGE/stderr" >&2; return 1; }
    python3 - "$STAGE/records" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
people = [d for r in records for d in r.get("detections", []) if d["label"] == "person"]
print(f"install: {len(records)} record(s), {len(people)} person detection(s)", file=sys.stderr)
sys.exit(0 if len(records) == 1 and people else 1)
PY
}
check "installed binary links no Swift libraries" no_swift_libraries
check "installed binary runs with /opt/swift hidden" runs_without_toolchain
check "installed binary run by name finds its installed model and detects" detects_with_installed_model
exit $((failures > 0))
