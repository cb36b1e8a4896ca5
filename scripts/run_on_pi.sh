#!/bin/sh
# Run on a Raspberry Pi (64-bit Raspberry Pi OS), from the folder `make pi-kit` wrote. Needs only python3 and
# python3-venv. `make pi-check` runs this same script in an emulated root.
# Installs cxr-edge into venv/ from the kit's box-kit/ alone, as a clinic box does (`sh box-kit/install.sh`: no
# network, the base install with the pinned LiteRT, nothing compiled; fails if TensorFlow comes along), classifies images/ with each bundle in bundles/ and compares every report with
# the host's: same rows, labels, refer flags and errors, probabilities within 2 steps of 1/256, ood_score
# within 1%, and whether it is the host's bit for bit. Then classifies sr-images/ (a DICOM image) with --sr and
# compares the SRs and heatmap secondary captures with the host's, every data element but the times they were
# written: equal, pixel data included, where the report was the host's bit for bit; else within the report's
# tolerances (pi_assets.py compare-sr).
# CXR_PI_MODE=selftest is for a machine known to compute wrongly (pi-check's emulated SME CPU): there each
# bundle's self-test must either refuse the interpreter (exit status 2) or fall back to kernels whose labels
# and refer flags match the host's.
# Prints "XNNPACK: on|off" (as the interpreter reports it), a self-test line and a PASS or FAIL line per
# bundle, and one for its DICOM results; exit status 0 when all pass.
set -eu
cd "$(dirname "$0")"
# the kit's bundles are signed by the key in trusted-keys/: the box must verify it (pi_assets.py compare checks)
CXR_EDGE_TRUSTED_KEYS="$PWD/trusted-keys"
export CXR_EDGE_TRUSTED_KEYS
label=${CXR_PI_LABEL:-$(uname -m)}
status=0

install() {  # $1: venv folder
    venv=$1
    if [ ! -x "$venv/bin/cxr-edge" ]; then
        sh box-kit/install.sh "$venv" > install.log 2>&1 || { cat install.log; echo "FAIL $label: install"; exit 1; }
        grep '^Install' install.log
    fi
    installed=$("$venv/bin/pip" list --format=freeze)
    echo "$installed" | sed 's/^/  /'
    if echo "$installed" | grep -qiE '^(tensorflow|keras|tf-keras)='; then
        echo "FAIL $label: the base install pulled TensorFlow"
        exit 1
    fi
}

run_bundles() {  # $1: venv folder, $2: pinned (as the host's) or selftest (refuse, or same labels)
    venv=$1; mode=$2
    version=$("$venv/bin/cxr-edge" --version)
    echo "$version"
    interpreter=$(echo "$version" | sed -n 's/.*interpreter: \([^ ]* [^ ]*\).*/\1/p')
    echo "XNNPACK: $(echo "$version" | sed -n 's/.*XNNPACK: \(on\|off\).*/\1/p') ($label, $interpreter)"
    for bundle in bundles/*/; do
        name=$(basename "$bundle")
        tag="$label, $interpreter, bundle $name"
        out="pi-$label-$name"
        rc=0
        "$venv/bin/cxr-edge" classify images --model "$bundle" --allow-unverified --format json \
            > "$out.json" 2> "$out.err" || rc=$?
        if [ "$mode" = selftest ] && [ "$rc" -eq 2 ] && grep -q "self-test failed" "$out.err"; then
            echo "  self-test: $(grep -o 'self-test failed.*' "$out.err" | cut -c1-400)"
            echo "PASS $tag: the self-test refused this interpreter (exit status 2)"
        elif [ "$rc" -gt 1 ]; then
            echo "FAIL $tag: cxr-edge classify exited with $rc: $(tail -n 3 "$out.err")"
            status=1
        else
            report=$("$venv/bin/python" pi_assets.py compare "host-$name.json" "$out.json" "$tag" "$mode") || status=1
            echo "$report"
            # the DICOM results must be the host's bit for bit where the report was
            if echo "$report" | grep -q '; bit for bit;'; then record "$venv" "$bundle" exact
            else record "$venv" "$bundle" "$mode"; fi
        fi
    done
}

# $1: venv folder, $2: bundle, $3: exact, pinned or selftest (pi_assets.py compare-sr); run_bundles' $out, $tag, $name
record() {
    rm -rf "$out-sr"
    rc=0
    "$1/bin/cxr-edge" classify sr-images --model "$2" --allow-unverified --sr "$out-sr" --format json \
        > "$out-sr.json" 2> "$out-sr.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAIL $tag, --sr: cxr-edge classify exited with $rc: $(tail -n 3 "$out-sr.err")"
        status=1
    else
        "$1/bin/python" pi_assets.py compare-sr "host-sr-$name" "$out-sr" "$tag, --sr" "$3" || status=1
    fi
}

install venv
run_bundles venv "${CXR_PI_MODE:-pinned}"
if [ "$status" -eq 0 ]; then echo "PASS ($label)"; else echo "FAIL ($label)"; fi
exit "$status"
