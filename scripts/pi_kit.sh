#!/usr/bin/env bash
# `make pi-kit`: everything a real Raspberry Pi needs to check itself against this machine, in one folder
# (default pi-kit/): the project's wheel, int8 bundles, test images, this machine's reports on them, and
# run-on-pi.sh. Copy the folder to the Pi and run `sh run-on-pi.sh` there; `make pi-check` runs the same
# kit in an emulated arm64 root.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
KIT=${KIT:-pi-kit}
rm -rf "$KIT" && mkdir -p "$KIT/bundles"
"$BIN/python" -m pip wheel --quiet --no-deps -w "$KIT" . 2>/dev/null
# An untrained alexnet-edge bundle (the 227-px AlexNet trunk's int8 kernels), plus the demo's trained bundle
# when `make demo` has made one (varied labels), or the bundle folders in CXR_PI_BUNDLES="DIR ...".
if [ -n "${CXR_PI_BUNDLES:-}" ]; then
    for bundle in $CXR_PI_BUNDLES; do cp -r "$bundle" "$KIT/bundles/$(basename "$bundle")"; done
else
    "$BIN/python" scripts/pi_assets.py bundle "$KIT/bundles/alexnet-edge"
    [ -f demo-output/bundle/manifest.json ] && cp -r demo-output/bundle "$KIT/bundles/demo"
fi
"$BIN/python" scripts/pi_assets.py images "$KIT/images"
for bundle in "$KIT"/bundles/*/; do
    name=$(basename "$bundle")
    "$BIN/cxr-edge" classify "$KIT/images" --model "$bundle" --allow-unverified --format json \
        > "$KIT/host-$name.json" 2>/dev/null || [ $? -eq 1 ]
done
cp scripts/pi_assets.py "$KIT/"
cp scripts/run_on_pi.sh "$KIT/run-on-pi.sh"
echo "wrote $KIT/: copy it to the Raspberry Pi and run 'sh run-on-pi.sh' there"
