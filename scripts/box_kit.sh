#!/usr/bin/env bash
# `make box-kit`: the offline installer a technician copies to a clinic box (default box-kit/): the project's
# wheel, every wheel the base install needs for each target in BOX_KIT_TARGETS (ARCH:PYTHON; by default
# Raspberry Pi OS 64-bit bookworm and trixie, and x86_64 Linux with Debian's and Ubuntu's Pythons), and
# install.sh, which installs from the kit alone (`pip --no-index`). Needs the package registry once, here.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
KIT=${KIT:-box-kit}
TARGETS=${BOX_KIT_TARGETS:-aarch64:3.11 aarch64:3.13 x86_64:3.11 x86_64:3.12}
rm -rf "$KIT" && mkdir -p "$KIT/wheels"
"$BIN/python" -m pip wheel --quiet --no-deps -w "$KIT/wheels" . 2>/dev/null
wheel=$(ls "$KIT"/wheels/cxr_edge-*.whl)
: > "$KIT/wheels/TARGETS"
for target in $TARGETS; do
    arch=${target%%:*}; python=${target#*:}
    # manylinux tags up to glibc 2.36 (bookworm's; trixie and Ubuntu 24.04 have newer, which still run them)
    platforms=(--platform "manylinux2014_$arch")
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
    "$BIN/python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --implementation cp --python-version "$python" "${platforms[@]}" -d "$KIT/wheels" "$wheel" \
        2> >(grep -v 'is ignored: it is neither' >&2)
    echo "$arch $python" >> "$KIT/wheels/TARGETS"
done
cp scripts/box_install.sh "$KIT/install.sh"
(cd "$KIT" && sha256sum wheels/* install.sh > SHA256SUMS)
echo "wrote $KIT/ ($(du -sh "$KIT" | cut -f1); targets: $TARGETS): copy it to the box and run 'sh install.sh' in it there"
