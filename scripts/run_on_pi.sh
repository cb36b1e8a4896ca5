#!/bin/sh
# Run on a Raspberry Pi (64-bit Raspberry Pi OS), from the folder `make pi-kit` wrote: installs the wheel
# into ./venv with the base install only (no TensorFlow, nothing compiled), classifies images/ with each
# bundle in bundles/, and compares every report with the host's (same rows, labels, refer flags and errors;
# probabilities within 1e-6). Prints PASS or FAIL; exit status 0 on PASS. `make pi-check` runs this same
# script in an emulated root. Needs only python3 and python3-venv.
set -eu
cd "$(dirname "$0")"
if [ ! -x venv/bin/cxr-edge ]; then
    python3 -m venv venv
    # --only-binary: a dependency that would need a compiler fails here instead of building
    venv/bin/pip install --quiet --only-binary=:all: ./cxr_edge-*.whl
fi
installed=$(venv/bin/pip list --format=freeze)
echo "$installed" | sed 's/^/  /'
if echo "$installed" | grep -qiE '^(tensorflow|keras|tf-keras)='; then
    echo "FAIL: the base install pulled TensorFlow"
    exit 1
fi
venv/bin/cxr-edge --version
label=${CXR_PI_LABEL:-$(uname -m)}
status=0
for bundle in bundles/*/; do
    name=$(basename "$bundle")
    venv/bin/cxr-edge info "$bundle" | sed 's/^/  /'
    rc=0
    venv/bin/cxr-edge classify images --model "$bundle" --allow-unverified --format json \
        > "pi-$name.json" 2>/dev/null || rc=$?
    if [ "$rc" -gt 1 ]; then
        echo "FAIL $label, bundle $name: cxr-edge classify exited with $rc"
        status=1
        continue
    fi
    venv/bin/python pi_assets.py compare "host-$name.json" "pi-$name.json" "$label, bundle $name" || status=1
done
if [ "$status" -eq 0 ]; then echo "PASS ($label)"; else echo "FAIL ($label)"; fi
exit "$status"
