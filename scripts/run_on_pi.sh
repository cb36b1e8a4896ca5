#!/bin/sh
# Run on a Raspberry Pi (64-bit Raspberry Pi OS), from the folder `make pi-kit` wrote. Needs only python3 and
# python3-venv. `make pi-check` runs this same script in an emulated root.
# 1. venv/: the base install of the wheel (the pinned LiteRT; fails if TensorFlow comes along or anything needs
#    compiling); classifies images/ with each bundle in bundles/ and compares every report with the host's bit
#    for bit (rows, labels, refer flags, errors, probabilities, ood_score).
# 2. With CXR_PI_NEWEST=1, venv-newest/: the same wheel with the newest LiteRT instead of the pinned one; each
#    bundle's self-test must either refuse it (exit status 2) or fall back to kernels whose labels and refer
#    flags match the host's.
# Prints "XNNPACK: on|off" per interpreter (as the interpreter reports it), a self-test line and a PASS or FAIL
# line per bundle; exit status 0 when all pass.
set -eu
cd "$(dirname "$0")"
label=${CXR_PI_LABEL:-$(uname -m)}
status=0

install() {  # $1: venv folder, then extra pip arguments for the interpreter to put in the pinned one's place
    venv=$1; shift
    if [ ! -x "$venv/bin/cxr-edge" ]; then
        python3 -m venv "$venv"
        # --only-binary: a dependency that would need a compiler fails here instead of building
        "$venv/bin/pip" install --quiet --only-binary=:all: ./cxr_edge-*.whl
        [ $# -eq 0 ] || "$venv/bin/pip" install --quiet --only-binary=:all: --upgrade "$@" 2>&1 \
            | grep -v "dependency conflicts\|requires ai-edge-litert" || true
    fi
    installed=$("$venv/bin/pip" list --format=freeze)
    echo "$installed" | sed 's/^/  /'
    if echo "$installed" | grep -qiE '^(tensorflow|keras|tf-keras)='; then
        echo "FAIL $label: the base install pulled TensorFlow"
        exit 1
    fi
}

run_bundles() {  # $1: venv folder, $2: exact (bit for bit with the host) or selftest (refuse, or same labels)
    venv=$1; mode=$2
    version=$("$venv/bin/cxr-edge" --version)
    echo "$version"
    interpreter=$(echo "$version" | sed -n 's/.*interpreter: \([^ ]* [^ ]*\).*/\1/p')
    echo "XNNPACK: $(echo "$version" | sed -n 's/.*XNNPACK: \(on\|off\).*/\1/p') ($label, $interpreter)"
    for bundle in bundles/*/; do
        name=$(basename "$bundle")
        tag="$label, $interpreter, bundle $name"
        out="pi-$(echo "$interpreter" | tr ' ' '-')-$name"
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
            "$venv/bin/python" pi_assets.py compare "host-$name.json" "$out.json" "$tag" "$mode" || status=1
        fi
    done
}

install venv
run_bundles venv exact
if [ "${CXR_PI_NEWEST:-0}" = 1 ]; then
    install venv-newest "${CXR_PI_NEWEST_LITERT:-ai-edge-litert}"
    run_bundles venv-newest selftest
fi
if [ "$status" -eq 0 ]; then echo "PASS ($label)"; else echo "FAIL ($label)"; fi
exit "$status"
