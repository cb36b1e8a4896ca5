#!/usr/bin/env bash
# `make node-demo`: the clinic node on this machine, on loopback, as a technician first sees it: the demo's bundle
# (`make demo` trains it when it is not there yet) with its publisher's key trusted, the screen on, sticks off, a user
# made, synthetic DICOM images sent by dcmtk's storescu as an X-ray unit would (one flag per compressed syntax); then
# the commands to try, the screen's address and its login. Ctrl-C stops it and leaves nothing running.
# BIN (the venv's bin folder) and OUT (the demo's folder) as for `make demo`; BUNDLE and KEYS to use another
# bundle and trust folder; NODE_DEMO_SECONDS to stop by itself after that long (the tests).
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-demo-output}
BUNDLE=${BUNDLE:-$OUT/bundle}
KEYS=${KEYS:-$OUT/trusted-keys}
HERE=$OUT/node
step() { printf '\n== %s\n' "$*"; }

for tool in storescu echoscu; do
    command -v "$tool" > /dev/null || { echo "node-demo: $tool is missing: sudo apt-get install dcmtk" >&2; exit 2; }
done
if [ ! -e "$BUNDLE" ]; then
    step "No bundle at $BUNDLE yet: \`make demo\` trains one first (a few minutes)"
    BIN="$BIN" OUT="$OUT" bash scripts/demo.sh
fi

step "1. The node's folder and configuration: $HERE/node.toml"
rm -rf "$HERE" && mkdir -p "$HERE"
free_port() {
    "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
DICOM_PORT=$(free_port)
WEB_PORT=$(free_port)
cat > "$HERE/node.toml" <<EOF
model = "$(realpath "$BUNDLE")"
data = "$(realpath "$HERE")/data"
trusted_keys = "$(realpath "$KEYS")"

[dicom]
enabled = true
ae_title = "CXREDGE"
bind = "127.0.0.1"
port = $DICOM_PORT
allowed_callers = ["XRAYROOM1"]
study_stable_seconds = 2

[usb]
enabled = false

[web]
enabled = true
bind = "127.0.0.1"
port = $WEB_PORT
EOF
cat "$HERE/node.toml"

step "2. A user for the screen"
PASSWORD=$("$BIN/python" -c 'import secrets; words = ["maize", "lantern", "orbit", "kettle", "violet", "harbor",
"cobalt", "meadow", "quartz", "ember", "willow", "saddle"]; print("-".join(secrets.choice(words) for _ in range(4))
+ "-" + str(secrets.randbelow(90) + 10))')
CXR_EDGE_PASSWORD="$PASSWORD" "$BIN/cxr-edge" user add technician --role admin --config "$HERE/node.toml"

step "3. Synthetic DICOM images, as a DR unit writes them"
"$BIN/cxr-train" synth "$HERE/unit" --per-class 2 --size 512 --dicom --syntax explicit --syntax jpeg-ls \
    --syntax j2k-lossless --syntax jpeg-lossless-sv1 > /dev/null
find "$HERE/unit" -name '*.dcm' | wc -l | xargs echo "images:"

step "4. The node: cxr-edge serve --config $HERE/node.toml (its log: $HERE/serve.log)"
"$BIN/cxr-edge" serve --config "$HERE/node.toml" > /dev/null 2> "$HERE/serve.log" &
NODE=$!
stop() {
    if kill -0 "$NODE" 2> /dev/null; then
        kill -TERM "$NODE" && wait "$NODE" || true
        echo "node-demo: the node stopped"
    fi
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
for _ in $(seq 1 600); do  # up to a minute
    grep -q "web screen on" "$HERE/serve.log" && break
    kill -0 "$NODE" 2> /dev/null || { cat "$HERE/serve.log" >&2; exit 2; }
    sleep 0.1
done
grep -q "web screen on" "$HERE/serve.log" || { echo "node-demo: the node did not start: $HERE/serve.log" >&2; exit 2; }

step "5. The X-ray unit: echoscu tests the link, storescu sends (one flag per compressed syntax)"
run() { echo "$ $(printf "%q " "$@")"; "$@"; }
run echoscu -aet XRAYROOM1 -aec CXREDGE 127.0.0.1 "$DICOM_PORT"
send() {  # $1: storescu's flag for the syntax (or none), $2: the syntax's name in the files' headers
    local files
    files=$(find "$HERE/unit" -name '*.dcm' -print0 | xargs -0 "$BIN/python" -c '
import sys, pydicom
syntax = lambda p: pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID.name
print("\n".join(p for p in sys.argv[2:] if syntax(p) == sys.argv[1]))' "$2")
    [ -n "$files" ] || return 0
    local -a list
    mapfile -t list <<< "$files"
    run storescu $1 -aet XRAYROOM1 -aec CXREDGE 127.0.0.1 "$DICOM_PORT" "${list[@]}"
}
send "" "Explicit VR Little Endian"
send "-xt" "JPEG-LS Lossless Image Compression"
send "-xv" "JPEG 2000 Image Compression (Lossless Only)"
send "-xs" "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])"
TOTAL=$(find "$HERE/unit" -name '*.dcm' | wc -l)
for _ in $(seq 1 1200); do  # up to two minutes: classified as they arrived
    DONE=$("$BIN/cxr-edge" results --config "$HERE/node.toml" --format json 2> /dev/null \
           | "$BIN/python" -c 'import json, sys; print(len(json.load(sys.stdin)["results"]))' || echo 0)
    [ "$DONE" -ge "$TOTAL" ] && break
    sleep 0.1
done
echo "classified: $DONE of $TOTAL"

step "6. Try it"
cat <<EOF
The screen:  http://127.0.0.1:$WEB_PORT/   user: technician   password: $PASSWORD
Results:     $BIN/cxr-edge results --config $HERE/node.toml
Test a link: echoscu -aet XRAYROOM1 -aec CXREDGE 127.0.0.1 $DICOM_PORT
Send more:   storescu -aet XRAYROOM1 -aec CXREDGE 127.0.0.1 $DICOM_PORT FILE.dcm   (docs/box.md: flags per syntax)
The log:     $HERE/serve.log
Synthetic images and a tiny model: the results mean nothing for patients. Ctrl-C stops the node.
EOF
if [ -n "${NODE_DEMO_SECONDS:-}" ]; then
    sleep "$NODE_DEMO_SECONDS" > /dev/null 2>&1 &
    wait $! || true
else
    wait "$NODE"
fi
