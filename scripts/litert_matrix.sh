#!/usr/bin/env bash
# `make litert-matrix`: every published ai-edge-litert version with a Python 3.11 aarch64 wheel, installed in
# turn in the emulated Raspberry Pi root of `make pi-check` (XNNPACK on, as on a Pi), running the standalone
# reproduction scripts/litert_repro.py on cxr-edge's int8 probe model. One line per (version, CPU, kernels):
# "match" or the largest difference from the x86_64 outputs. Run it before moving the pin in pyproject.toml to
# a new version (then `make pi-check` with the new pin). Needs root; about a minute per version.
#   CXR_LITERT_VERSIONS="2.0.3 2.3.0" make litert-matrix    # only these versions
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
CPUS=${CXR_PI_CPUS:-cortex-a72 cortex-a76 max}  # max: qemu's SME-capable CPU, where versions >= 2.1 go wrong
source scripts/pi_root.sh

versions=${CXR_LITERT_VERSIONS:-$("$BIN/python" -m pip index versions ai-edge-litert 2>/dev/null \
    | sed -n 's/^Available versions: //p' | tr -d ',')}
work=/tmp/cxr-litert-matrix
rm -rf "$ROOT$work" && mkdir -p "$ROOT$work"
cp scripts/litert_repro.py edge/cxr_edge/models/probe/model.tflite edge/cxr_edge/models/probe/known.npz "$ROOT$work/"
say "Shared venv in the root: numpy (each version's other dependencies come with it)"
[ -x "$ROOT/opt/litert-matrix/bin/python" ] || in_root python3 -m venv /opt/litert-matrix
in_root /opt/litert-matrix/bin/pip install --quiet --only-binary=:all: numpy

say "Versions: $versions"
for version in $versions; do
    if ! in_root /opt/litert-matrix/bin/pip install --quiet --only-binary=:all: \
            "ai-edge-litert==$version" > "$ROOT$work/install-$version.log" 2>&1; then
        echo "ai-edge-litert $version: no Python 3.11 aarch64 wheel (or it did not install)"
        continue
    fi
    for cpu in $CPUS; do
        pi_cpu "$cpu"
        lines=$(in_root /opt/litert-matrix/bin/python "$work/litert_repro.py" "$work/model.tflite" \
            "$work/known.npz" 2> "$ROOT$work/run.err" | grep kernels || true)
        echo "${lines:-ai-edge-litert $version: the reproduction did not run: $(tail -n 1 "$ROOT$work/run.err")}" \
            | sed "s/^/$cpu: /"
    done
done
