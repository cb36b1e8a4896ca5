#!/usr/bin/env bash
# `make pi-check`: install cxr-edge's wheel, base install only, into a Debian bookworm arm64 root (Raspberry
# Pi OS's userland) under qemu-user emulation, run it there for a Raspberry Pi 4 and 5 CPU, and compare its
# reports with this machine's: same rows, labels, refer flags and errors, probabilities within 1e-6.
# Needs root (debootstrap, chroot, mounts). The root is built once and cached outside the repository.
# Emulated timings say nothing about a real Pi: none are reported.
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
# XNNPACK stays off. With a Pi-like /sys it turns on, and under qemu 7.2 its Cortex-A72 int8 kernels gave
# garbage (stage 1 uint8 outputs 56 where the host and the reference kernels give 229), which says nothing
# about a real Pi: see the README.

say "Test material made on this machine: the wheel, a bundle, images"
mkdir -p "$WORK/dist"
rm -f "$WORK"/dist/*.whl
"$BIN/python" -m pip wheel --quiet --no-deps -w "$WORK/dist" . 2>/dev/null
WHEEL=$(ls "$WORK"/dist/cxr_edge-*.whl)
# An untrained alexnet-edge bundle (the 227-px AlexNet trunk's int8 kernels), plus the demo's trained bundle
# when `make demo` has made one (varied labels), or CXR_PI_BUNDLES="DIR ...".
BUNDLES=${CXR_PI_BUNDLES:-}
if [ -z "$BUNDLES" ]; then
    "$BIN/python" scripts/pi_assets.py bundle "$WORK/alexnet-edge"
    BUNDLES="$WORK/alexnet-edge"
    [ -f demo-output/bundle/manifest.json ] && BUNDLES="$BUNDLES $(pwd)/demo-output/bundle"
fi
rm -rf "$WORK/images"
"$BIN/python" scripts/pi_assets.py images "$WORK/images"
for bundle in $BUNDLES; do
    name=$(basename "$bundle")
    "$BIN/cxr-edge" classify "$WORK/images" --model "$bundle" --allow-unverified --format json \
        > "$WORK/host-$name.json" || [ $? -eq 1 ]
done

say "Base install in the arm64 root (as a clinic box: pip install the wheel)"
rm -rf "$ROOT/tmp/cxr" && mkdir -p "$ROOT/tmp/cxr"
cp "$WHEEL" "$ROOT/tmp/cxr/" && cp -r "$WORK/images" "$ROOT/tmp/cxr/images"
for bundle in $BUNDLES; do cp -r "$bundle" "$ROOT/tmp/cxr/$(basename "$bundle")"; done
in_root() { chroot "$ROOT" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"; }
in_root rm -rf /opt/cxr-venv
QEMU_CPU=cortex-a72 in_root python3 -m venv /opt/cxr-venv
# --only-binary: a dependency that would need a compiler fails here instead of building
QEMU_CPU=cortex-a72 in_root /opt/cxr-venv/bin/pip install --quiet --only-binary=:all: "/tmp/cxr/$(basename "$WHEEL")"
installed=$(QEMU_CPU=cortex-a72 in_root /opt/cxr-venv/bin/pip list --format=freeze)
echo "$installed" | sed 's/^/  /'
if echo "$installed" | grep -qiE '^(tensorflow|keras|tf-keras)'; then echo "FAIL: the base install pulled TensorFlow"; exit 1; fi

status=0
for cpu in $CPUS; do
    say "Raspberry Pi CPU $cpu (QEMU_CPU=$cpu, Pi-like /proc/cpuinfo)"
    "$BIN/python" scripts/pi_assets.py cpuinfo "$cpu" > "$WORK/cpuinfo-$cpu"
    bind "$WORK/cpuinfo-$cpu" "$ROOT/proc/cpuinfo"
    QEMU_CPU=$cpu in_root /opt/cxr-venv/bin/cxr-edge --version
    for bundle in $BUNDLES; do
        name=$(basename "$bundle")
        QEMU_CPU=$cpu in_root /opt/cxr-venv/bin/cxr-edge info "/tmp/cxr/$name" | sed 's/^/  /'
        QEMU_CPU=$cpu in_root /opt/cxr-venv/bin/cxr-edge classify /tmp/cxr/images --model "/tmp/cxr/$name" \
            --allow-unverified --format json > "$WORK/pi-$cpu-$name.json" 2>/dev/null || [ $? -eq 1 ]
        "$BIN/python" scripts/pi_assets.py compare "$WORK/host-$name.json" "$WORK/pi-$cpu-$name.json" \
            "$cpu, bundle $name" || status=1
    done
    umount -l "$ROOT/proc/cpuinfo"; unset 'mounted[${#mounted[@]}-1]'
done
say "$([ $status -eq 0 ] && echo PASS || echo FAIL): reports in $WORK"
exit $status
