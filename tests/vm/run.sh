#!/usr/bin/env bash
# The VM test: Sightline installed with `make install` into a Debian bookworm guest, run by the guest's real systemd
# with the stock kernel's vivid driver as the camera. Builds (or reuses) the guest tree (tests/vm/build-image.sh),
# stages the install and the guest checks into a copy of it, boots it with QEMU (kernel and initrd from the image,
# root disk in snapshot mode, no network), and collects the results through a 9p share: the guest's
# sightline-vmtest.service runs tests/vm/guest/checks.py and powers off. Prints one PASS/FAIL line per check and
# exits non-zero if any fails or the guest did not finish. KVM only when the CPU shows vmx/svm, else TCG.
#   SIGHTLINE_VM_KEEP=1 keeps the work directory (console log, journal) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
CACHE="${SIGHTLINE_VM_CACHE:-$PWD/.cache/vm}"
PHOTO=.cache/media/basketball1.png
GUEST_TIMEOUT=${SIGHTLINE_VM_TIMEOUT:-2400}

phase() { echo "vm: $*" >&2; }
t=$SECONDS
BASE=$(tests/vm/build-image.sh "$CACHE")
phase "guest tree ready in $((SECONDS - t)) s ($BASE; built from scratch in $(cat "$BASE/build-seconds") s)"

WORK=$(mktemp -d /tmp/sightline-vm.XXXXXX)
cleanup() {
    rm -rf "$WORK/root" "$WORK/disk.img"
    if [ -n "${SIGHTLINE_VM_KEEP:-}" ]; then phase "kept $WORK (results/console.log, journal.txt, guest.log)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
ROOT="$WORK/root"

t=$SECONDS
make --no-print-directory build >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; exit 1; }
phase "static release build took $((SECONDS - t)) s"

t=$SECONDS
cp -a "$BASE/root" "$ROOT"
make --no-print-directory install INSTALL_SKIP_BUILD=1 DESTDIR="$ROOT" PREFIX=/usr/local >"$WORK/install.log" 2>&1 \
    || { tail -n 40 "$WORK/install.log" >&2; exit 1; }
install -d "$ROOT/opt/vmtest" "$ROOT/results"
install -m 0755 tests/vm/guest/checks.py "$ROOT/opt/vmtest/checks.py"
install -m 0644 tests/vm/guest/sightline-vmtest.service "$ROOT/etc/systemd/system/sightline-vmtest.service"
ln -sf /etc/systemd/system/sightline-vmtest.service "$ROOT/etc/systemd/system/multi-user.target.wants/sightline-vmtest.service"
# The known image: a photo at 640x480 as the YUYV frames vivid's output loop sends to its capture side, and the
# detections `sightline detect` finds on the host in exactly those pixels (YUYV back to RGB).
ffmpeg -v error -y -i "$PHOTO" -vf scale=640:480 -pix_fmt yuyv422 -f rawvideo "$ROOT/opt/vmtest/frame.yuyv"
ffmpeg -v error -y -f rawvideo -pix_fmt yuyv422 -s 640x480 -i "$ROOT/opt/vmtest/frame.yuyv" "$WORK/expected.png"
.build/release/sightline detect "$WORK/expected.png" > "$ROOT/opt/vmtest/expected.json"
truncate -s 4G "$WORK/disk.img"
mkfs.ext4 -q -F -L root -E lazy_itable_init=1 -d "$ROOT" "$WORK/disk.img"
rm -rf "$ROOT"
phase "guest disk staged in $((SECONDS - t)) s"

mkdir -p "$WORK/results"
if grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -w /dev/kvm ]; then ACCEL=(-accel kvm -cpu host); else ACCEL=(-accel tcg -cpu max); fi
phase "booting the guest (${ACCEL[*]}), at most $GUEST_TIMEOUT s"
t=$SECONDS
status=0
timeout "$GUEST_TIMEOUT" qemu-system-x86_64 "${ACCEL[@]}" -machine q35 -smp 2 -m 3072 \
    -kernel "$BASE/vmlinuz" -initrd "$BASE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0 quiet systemd.journald.forward_to_console=1" \
    -drive file="$WORK/disk.img",format=raw,if=virtio,snapshot=on \
    -virtfs local,path="$WORK/results",mount_tag=results,security_model=none,id=results \
    -nic none -display none -monitor none -serial file:"$WORK/results/console.log" -no-reboot \
    || status=$?
phase "guest ran for $((SECONDS - t)) s (qemu exit $status)"

cat "$WORK/results/results.txt" 2>/dev/null | grep -E '^(PASS|FAIL|DONE)' || true
if ! grep -q '^DONE' "$WORK/results/results.txt" 2>/dev/null; then
    echo "FAIL guest finished its checks (see the console log below)"
    tail -n 60 "$WORK/results/console.log" >&2 || true
    SIGHTLINE_VM_KEEP=1
    exit 1
fi
if grep -q '^FAIL' "$WORK/results/results.txt"; then
    SIGHTLINE_VM_KEEP=1
    tail -n 80 "$WORK/results/guest.log" >&2 || true
    exit 1
fi
