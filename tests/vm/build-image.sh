#!/usr/bin/env bash
# Builds (once) the Debian bookworm guest the VM test boots: a debootstrap tree with systemd, the stock
# linux-image-amd64 (its vivid module is the camera), the runtime libraries Sightline links, v4l-utils and
# python3, from this machine's own apt mirror. The tree and the kernel/initrd pulled out of it are cached
# under $1 (default .cache/vm), keyed on this script, so a re-run costs nothing; a fresh clone builds it.
#   tests/vm/build-image.sh [CACHE_DIR]      prints the path of the finished tree's directory
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${1:-$PWD/.cache/vm}"
SUITE=bookworm
PACKAGES=(systemd systemd-sysv dbus udev kmod procps util-linux linux-image-amd64 v4l-utils python3
          libavformat59 libavcodec59 libswscale6 libavutil57 libv4l-0 libdnnl2 libgomp1 libstdc++6
          libmosquitto1)

# The first Debian main archive this machine's apt uses (one-line or deb822 sources).
mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local f url
    for f in "${files[@]}"; do
        [ -r "$f" ] || continue
        url=$(awk '/^deb /{ for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
                   /^URIs:/{ print $2; exit }' "$f" | grep -v -- '-security' | head -n1) || true
        [ -n "$url" ] && { echo "${url%/}"; return; }
    done
    echo "vm: no Debian archive found in this machine's apt sources (/etc/apt/sources.list*)" >&2
    return 1
}
MIRROR=$(mirror)
KEY=$( { cat "$0"; echo "$MIRROR"; } | sha256sum | cut -c1-12)
OUT="$CACHE/bookworm-$KEY"
if [ -f "$OUT/done" ]; then echo "$OUT"; exit 0; fi

for tool in debootstrap mkfs.ext4 qemu-system-x86_64; do
    command -v "$tool" >/dev/null 2>&1 && continue
    echo "vm: installing debootstrap, e2fsprogs and qemu-system-x86" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        debootstrap e2fsprogs qemu-system-x86 >&2
    break
done

started=$(date +%s)
rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp"
ROOT="$OUT.tmp/root"
echo "vm: debootstrap $SUITE from $MIRROR into $ROOT" >&2
nice -n 10 debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    "$SUITE" "$ROOT" "$MIRROR" > "$OUT.tmp/debootstrap.log" 2>&1 \
    || { tail -n 30 "$OUT.tmp/debootstrap.log" >&2; exit 1; }

# Guest configuration: root on the virtio disk, no network, no login prompts, a fixed hostname.
echo sightline-vm > "$ROOT/etc/hostname"
printf '/dev/vda / ext4 defaults 0 1\n' > "$ROOT/etc/fstab"
ln -sf /dev/null "$ROOT/etc/systemd/system/getty@.service"
ln -sf /dev/null "$ROOT/etc/systemd/system/serial-getty@.service"
ln -sf /dev/null "$ROOT/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$ROOT/etc/systemd/system/apt-daily-upgrade.timer"
ln -sf /dev/null "$ROOT/etc/systemd/system/e2scrub_all.timer"
ln -sf /dev/null "$ROOT/etc/systemd/system/fstrim.timer"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

cp "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n1)" "$OUT.tmp/vmlinuz"
cp "$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -n1)" "$OUT.tmp/initrd.img"
chmod 0644 "$OUT.tmp/vmlinuz" "$OUT.tmp/initrd.img"
echo "$(( $(date +%s) - started ))" > "$OUT.tmp/build-seconds"
touch "$OUT.tmp/done"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
echo "vm: guest tree built in $(cat "$OUT/build-seconds")s" >&2
echo "$OUT"
