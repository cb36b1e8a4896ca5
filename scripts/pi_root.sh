# Sourced by pi_check.sh and litert_matrix.sh: the emulated Raspberry Pi userland they run in. Builds, once, a
# Debian bookworm arm64 root (Raspberry Pi OS's userland, Python 3.11) under qemu-user, cached outside the
# repository; mounts /proc, /dev and /sys in it (with /sys, LiteRT's cpuinfo lists the CPUs and XNNPACK turns
# on, as on a real Pi); defines `in_root`, `in_root_offline` and `pi_cpu CPU` (QEMU_CPU and a Pi-like /proc/cpuinfo for it).
# Needs root (debootstrap, chroot, mounts).
ROOT=${CXR_PI_ROOT:-$HOME/.cache/cxr-edge/pi-bookworm-arm64}
say() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "this needs root (debootstrap, chroot, bind mounts)"; exit 2; }

host_mirror() {  # the host's Debian mirror, from one-line or deb822 sources, comments skipped
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^deb /{print $2} /^URIs:/{for (i = 2; i <= NF; i++) print $i}' | grep -E '/debian/?$' | head -n1 || true
}
MIRROR=${CXR_PI_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

say "Host tools: qemu-user-static, debootstrap, binfmt-support"
if ! command -v debootstrap >/dev/null || ! [ -e /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap binfmt-support
fi
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
qemu-aarch64-static --version | head -n1

if [ ! -e "$ROOT/.cxr-complete" ]; then
    say "Building the bookworm arm64 root once, in $ROOT (about 5 minutes)"
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    debootstrap --arch=arm64 --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$ROOT" "$MIRROR"
    touch "$ROOT/.cxr-complete"
fi
# The same registries answer inside: the host's CA bundle, pip configuration and resolver.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

mounted=()
pi_unmount() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; mounted=(); }
trap pi_unmount EXIT
bind() { mount --bind "$1" "$2"; mounted+=("$2"); }
mountpoint -q "$ROOT/proc" || { mount -t proc proc "$ROOT/proc"; mounted+=("$ROOT/proc"); }
mountpoint -q "$ROOT/dev" || bind /dev "$ROOT/dev"
mkdir -p "$ROOT/sys"
mountpoint -q "$ROOT/sys" || bind /sys "$ROOT/sys"

# QEMU_CPU is passed on explicitly: `env -i` would clear it, and every program it starts would then run on
# qemu's default "max" CPU whatever was asked (earlier runs here did, unknowingly: docs/box.md, "Verified interpreters").
root_env() { echo PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 ${QEMU_CPU:+QEMU_CPU=$QEMU_CPU}; }
in_root() { chroot "$ROOT" env -i $(root_env) "$@"; }
# The same with no network at all: a network namespace of its own, with no interface up.
in_root_offline() { unshare --net chroot "$ROOT" env -i $(root_env) "$@"; }

# QEMU_CPU and a Pi-like /proc/cpuinfo for CPU (cortex-a72: Pi 4, cortex-a76: Pi 5): LiteRT crashes on qemu's
# pass-through of the host's x86 cpuinfo.
PI_CPUINFO_DIR=$(mktemp -d /tmp/cxr-pi-cpuinfo.XXXXXX)
pi_cpu() {
    export QEMU_CPU=$1
    "${BIN:-.venv/bin}/python" scripts/pi_assets.py cpuinfo "$1" > "$PI_CPUINFO_DIR/$1"
    mountpoint -q "$ROOT/proc/cpuinfo" && umount -l "$ROOT/proc/cpuinfo"
    mount --bind "$PI_CPUINFO_DIR/$1" "$ROOT/proc/cpuinfo"
    mounted+=("$ROOT/proc/cpuinfo")
}
