#!/bin/sh
# Installs cxr-edge on a clinic box from this kit alone, with no network: `make box-kit` wrote it.
#
#   sh install.sh [DIR] [BUNDLE]
#
# DIR (default /opt/cxr-edge) becomes a Python virtual environment holding cxr-edge and the wheels it needs;
# running it again upgrades that install in place. With BUNDLE (a bundle folder or .cxrb file), the bundle's
# checksums, signature and self-test are checked on this box once installed. Needs python3 with its venv
# module (Raspberry Pi OS has both; elsewhere: the python3-venv package). Exit status 0 when installed and
# checked, 1 when something failed (the message says what to do), 2 on wrong arguments.
set -eu
KIT=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-/opt/cxr-edge}
BUNDLE=${2:-}
PYTHON=${PYTHON:-python3}

fail() { echo "install.sh: $*" >&2; exit 1; }
[ $# -le 2 ] || { echo "usage: sh install.sh [DIR] [BUNDLE]" >&2; exit 2; }
[ -z "$BUNDLE" ] || [ -e "$BUNDLE" ] || { echo "install.sh: no bundle at $BUNDLE" >&2; exit 2; }

command -v "$PYTHON" >/dev/null 2>&1 || fail "no $PYTHON on this machine: install Python 3.11 or newer first"
arch=$(uname -m)
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! grep -qx "$arch $version" "$KIT/wheels/TARGETS"; then
    fail "this kit has no wheels for $arch with Python $version (it has: $(tr '\n' ',' < "$KIT/wheels/TARGETS" | sed 's/,$//; s/,/, /g')).
Make one that does, on a machine with the package registry: make box-kit BOX_KIT_TARGETS=$arch:$version"
fi
if [ -f "$KIT/SHA256SUMS" ]; then
    (cd "$KIT" && sha256sum --quiet -c SHA256SUMS) || fail "the kit's files do not match SHA256SUMS: copy the kit again"
fi

echo "Installing cxr-edge into $DIR (Python $version, $arch), from $KIT/wheels only"
mkdir -p "$DIR" 2>/dev/null || fail "cannot create $DIR: run as root (sudo sh install.sh), or name a folder you own"
[ -w "$DIR" ] || fail "cannot write to $DIR: run as root (sudo sh install.sh), or name a folder you own"
[ -x "$DIR/bin/python" ] || "$PYTHON" -m venv "$DIR" \
    || fail "could not make a virtual environment in $DIR: install python3-venv (Debian, Raspberry Pi OS) and run this again"
# --no-index and no pip configuration: the kit is the only source; --only-binary: nothing is compiled on the box
PIP_CONFIG_FILE=/dev/null
export PIP_CONFIG_FILE
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIREMENT 2>/dev/null || true
"$DIR/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --only-binary=:all: \
    --find-links "$KIT/wheels" --upgrade cxr-edge || fail "pip could not install from the kit (its message is above)"

"$DIR/bin/cxr-edge" --version || fail "cxr-edge was installed but does not start (its message is above)"
if [ -n "$BUNDLE" ]; then
    "$DIR/bin/cxr-edge" info "$BUNDLE" || fail "the bundle $BUNDLE failed its checks on this box (above): do not use it here"
fi
echo "Installed: $DIR/bin/cxr-edge (add $DIR/bin to PATH, or: ln -s $DIR/bin/cxr-edge /usr/local/bin/)"
