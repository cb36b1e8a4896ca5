#!/usr/bin/env bash
# `make pi-kit`: everything a real Raspberry Pi needs to check itself against this machine, in one folder
# (default pi-kit/): the offline installer of `make box-kit` for Raspberry Pi OS 64-bit (box-kit/), int8 bundles, test
# images, this machine's reports on them and its DICOM results (`classify --sr`) on one of them, and run-on-pi.sh.
# Copy the folder to the Pi and run `sh run-on-pi.sh` there; `make pi-check` runs the same kit in an emulated arm64
# root.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
KIT=${KIT:-pi-kit}
rm -rf "$KIT" && mkdir -p "$KIT/bundles"
# The Pi installs the way a clinic box does: from the box kit alone (bookworm's Python; trixie's with
# BOX_KIT_TARGETS="aarch64:3.13").
BIN="$BIN" KIT="$KIT/box-kit" BOX_KIT_TARGETS=${BOX_KIT_TARGETS:-aarch64:3.11} bash scripts/box_kit.sh > /dev/null
# An untrained alexnet-edge bundle (the 227-px AlexNet trunk's int8 kernels), the same with layers of the kinds
# `cxr-convert --search` keeps out of int8 (float16 weights with float arithmetic, int16 activations), and a small
# trained tiny bundle (varied, confident labels: an untrained model's outputs hardly move with the input), made
# here; plus the bundle folders in CXR_PI_BUNDLES="DIR ..." (the demo's, your own).
"$BIN/python" scripts/pi_assets.py bundle "$KIT/bundles/alexnet-edge"
"$BIN/python" scripts/pi_assets.py bundle-mixed "$KIT/bundles/alexnet-edge-mixed"
train=$(mktemp -d /tmp/cxr-pi-kit-train.XXXXXX)
"$BIN/cxr-train" synth "$train/data" --per-class 60 --size 128 --seed 0 > /dev/null
"$BIN/cxr-train" fit "$train/data" --out "$train/run" --preset tiny --epochs-stage1 15 --epochs-stage2 15 \
    --seed 0 > "$train/fit.log" 2>&1 || { cat "$train/fit.log"; exit 1; }
# exit status 1 is a failed parity gate: the bundle is written, and the kit uses --allow-unverified anyway
"$BIN/cxr-convert" "$train/run" --out "$KIT/bundles/tiny" > "$train/convert.log" 2>&1 || [ $? -eq 1 ] \
    || { cat "$train/convert.log"; exit 1; }
for bundle in ${CXR_PI_BUNDLES:-}; do cp -r "$bundle" "$KIT/bundles/$(basename "$bundle")"; done
# Every kit bundle signed with a throwaway key whose .pub is the kit's trust folder, so the Pi checks Ed25519
# signatures with its own cryptography wheel (the private key never enters the kit).
mkdir -p "$KIT/trusted-keys"
"$BIN/cxr-sign" keygen "$train/kit" > /dev/null
cp "$train/kit.pub" "$KIT/trusted-keys/kit.pub"
for bundle in "$KIT"/bundles/*/; do "$BIN/cxr-sign" sign "$bundle" --key "$train/kit.key" > /dev/null 2>&1; done
rm -rf "$train"
export CXR_EDGE_TRUSTED_KEYS="$KIT/trusted-keys"
"$BIN/python" scripts/pi_assets.py images "$KIT/images"
# One of the DICOM images again, alone, for the results into the record (`classify --sr`: an SR and a heatmap
# secondary capture): the heatmap costs 64 more inferences an image, about a minute per image of alexnet-edge's
# under emulation (two minutes on cortex-a72), so one image, not all of them.
mkdir "$KIT/sr-images"
cp "$KIT/images/dicom-explicit" "$KIT/sr-images/"
for bundle in "$KIT"/bundles/*/; do
    name=$(basename "$bundle")
    "$BIN/cxr-edge" classify "$KIT/images" --model "$bundle" --allow-unverified --format json \
        > "$KIT/host-$name.json" 2>/dev/null || [ $? -eq 1 ]
    "$BIN/cxr-edge" classify "$KIT/sr-images" --model "$bundle" --allow-unverified --sr "$KIT/host-sr-$name" \
        --format json > /dev/null 2> "$KIT/host-sr-$name.err" || { cat "$KIT/host-sr-$name.err"; exit 1; }
    rm "$KIT/host-sr-$name.err"
done
cp scripts/pi_assets.py "$KIT/"
cp scripts/run_on_pi.sh "$KIT/run-on-pi.sh"
echo "wrote $KIT/: copy it to the Raspberry Pi and run 'sh run-on-pi.sh' there"
