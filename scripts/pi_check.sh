#!/usr/bin/env bash
# `make pi-check`: install cxr-edge's wheel, base install only, into a Debian bookworm arm64 root (Raspberry
# Pi OS's userland) under qemu-user emulation, run it there for a Raspberry Pi 4 and 5 CPU, and compare its
# reports with this machine's: same rows, labels, refer flags and errors, probabilities within 1e-6.
# Needs root (debootstrap, chroot, mounts). The root is built once and cached outside the repository.
# Emulated timings say nothing about a real Pi: none are reported. It runs the kit of `make pi-kit`
# (scripts/pi_kit.sh), which a real Pi runs the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
ROOT=${CXR_PI_ROOT:-$HOME/.cache/cxr-edge/pi-bookworm-arm64}
WORK=${CXR_PI_WORK:-$(mktemp -d /tmp/cxr-pi-check.XXXXXX)}
host_mirror() {  # the host's Debian mirror, from one-line or deb822 sources, comments skipped
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^deb /{print $2} /^URIs:/{for (i = 2; i <= NF; i++) print $i}' | grep -E '/debian/?$' | head -n1 || true
}
MIRROR=${CXR_PI_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CPUS=${CXR_PI_CPUS:-cortex-a72 cortex-a76}
say() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "pi-check needs root (debootstrap, chroot, bind mounts)"; exit 2; }

say "Host tools: qemu-user-static, debootstrap, binfmt-support"
if ! command -v debootstrap >/dev/null || ! [ -e /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap binfmt-support
fi
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true

if [ ! -e "$ROOT/.cxr-complete" ]; then
    say "Building the bookworm arm64 root once, in $ROOT (about 5 minutes)"
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    debootstrap --arch=arm64 --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$ROOT" "$MIRROR"
    touch "$ROOT/.cxr-complete"
fi
# The same registries answer inside: the host's CA bundle, pip configuration and apt sources.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
bind() { mount --bind "$1" "$2"; mounted+=("$2"); }
mountpoint -q "$ROOT/proc" || { mount -t proc proc "$ROOT/proc"; mounted+=("$ROOT/proc"); }
mountpoint -q "$ROOT/dev" || bind /dev "$ROOT/dev"
# No /sys in the root, on purpose: LiteRT's cpuinfo then cannot list the CPUs ("Error in cpuinfo" lines) and
# XNNPACK stays off. With a Pi-like /sys it turns on, and under qemu 7.2 its int8 convolutions are wrong from
# the first one, for every model and QEMU_CPU tried (conv1 outputs 70-76 steps off), which says nothing
# about a real Pi: see the README.

say "Test material made on this machine: the kit of \`make pi-kit\` (wheel, bundles, images, host reports)"
KIT="$WORK/kit" BIN="$BIN" bash scripts/pi_kit.sh
rm -rf "$ROOT/tmp/cxr-kit" && cp -r "$WORK/kit" "$ROOT/tmp/cxr-kit"
in_root() { chroot "$ROOT" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"; }

status=0
for cpu in $CPUS; do
    say "Raspberry Pi CPU $cpu (QEMU_CPU=$cpu, Pi-like /proc/cpuinfo): the kit's run-on-pi.sh"
    "$BIN/python" scripts/pi_assets.py cpuinfo "$cpu" > "$WORK/cpuinfo-$cpu"
    bind "$WORK/cpuinfo-$cpu" "$ROOT/proc/cpuinfo"
    # the first CPU's run installs the wheel (base install only), the second reuses that venv
    QEMU_CPU=$cpu in_root env CXR_PI_LABEL="$cpu" sh /tmp/cxr-kit/run-on-pi.sh || status=1
    umount -l "$ROOT/proc/cpuinfo"; unset 'mounted[${#mounted[@]}-1]'
done
cp "$ROOT"/tmp/cxr-kit/pi-*.json "$WORK/" 2>/dev/null || true
say "$([ $status -eq 0 ] && echo PASS || echo FAIL): reports in $WORK"
exit $status
