#!/usr/bin/env bash
# The end-to-end demo: synthetic data -> training -> int8 bundle -> classify a "USB stick" -> evaluate -> explain.
# Called by `make demo` with BIN (the venv's bin folder) and OUT (the output folder) set.
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-demo-output}
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. Synthetic chest X-rays in the COVID-19 Radiography Database layout"
"$BIN/cxr-train" synth "$OUT/data" --per-class 400 --size 128 --seed 0
"$BIN/cxr-train" split "$OUT/data" --out "$OUT/split.csv" --seed 0

step "2. Train both stages (tiny preset, so the demo finishes in minutes)"
"$BIN/cxr-train" fit "$OUT/data" --out "$OUT/run" --split "$OUT/split.csv" --preset tiny \
    --epochs-stage1 40 --epochs-stage2 30 --overwrite

step "3. Convert to an int8 TFLite bundle and check it against the float models"
# The gate compares the models on the run's validation and test images and on 4,000 more labelled images
# (the generator is cheap): 480 images alone cannot show that int8 keeps 98% of the float labels.
"$BIN/cxr-train" synth "$OUT/parity-data" --per-class 1000 --size 128 --seed 11 > /dev/null
set +e
"$BIN/cxr-convert" "$OUT/run" --out "$OUT/bundle" --parity-data "$OUT/parity-data" --archive
gate=$?
set -e
if [ "$gate" -eq 1 ]; then
    echo "DEMO FAILED: the int8 bundle did not pass the parity gate (its verdict is above, and in" >&2
    echo "$OUT/bundle/parity.md); the box refuses such a bundle, so the demo stops here." >&2
fi
[ "$gate" -eq 0 ] || exit "$gate"

step "3b. Sign the bundle, and trust the key as a clinic box would (docs/security.md, \"Signed bundles\")"
rm -rf "$OUT/keys" "$OUT/trusted-keys"
mkdir -p "$OUT/keys" "$OUT/trusted-keys"
"$BIN/cxr-sign" keygen "$OUT/keys/demo-publisher"
"$BIN/cxr-sign" sign "$OUT/bundle" --key "$OUT/keys/demo-publisher.key"
"$BIN/cxr-sign" sign "$OUT/bundle.cxrb" --key "$OUT/keys/demo-publisher.key"  # the one file a box is given
cp "$OUT/keys/demo-publisher.pub" "$OUT/trusted-keys/"
export CXR_EDGE_TRUSTED_KEYS="$OUT/trusted-keys"
"$BIN/cxr-edge" info "$OUT/bundle" | grep "^origin"

step "4. Classify a \"USB stick\" of new images (with a corrupt file, a macOS ._ file and a non-image)"
rm -rf "$OUT/usb" "$OUT/new-images"
"$BIN/cxr-train" synth "$OUT/new-images" --per-class 3 --size 299 --seed 2026 >/dev/null
mkdir -p "$OUT/usb/clinic-day"
find "$OUT/new-images" -path '*/images/*.png' | sort | while read -r f; do
    cp "$f" "$OUT/usb/clinic-day/$(basename "$f" | tr ' ' '_')"
done
head -c 2000 "$OUT/usb/clinic-day/COVID-1.png" > "$OUT/usb/clinic-day/corrupt.png"
printf 'Mac OS X        \0\0' > "$OUT/usb/clinic-day/._COVID-1.png"
echo "appointment list" > "$OUT/usb/clinic-day/appointments.txt"
set +e
rm -rf "$OUT/heatmaps"
"$BIN/cxr-edge" classify "$OUT/usb" --model "$OUT/bundle" --format table \
    --output "$OUT/classification.csv" --heatmaps "$OUT/heatmaps"
status=$?
set -e
[ "$status" -le 1 ] || exit "$status"

step "4b. The same stick as the clinician's worklist: one HTML file, most urgent first, with heatmaps"
set +e
"$BIN/cxr-edge" classify "$OUT/usb" --model "$OUT/bundle" --format csv \
    --output "$OUT/worklist.html" --html-heatmaps > /dev/null
status=$?
set -e
[ "$status" -le 1 ] || exit "$status"
if command -v chromium > /dev/null 2>&1; then  # a picture of it, as the README and docs/box.md show
    chromium --headless --no-sandbox --disable-gpu --user-data-dir="$(mktemp -d)" --hide-scrollbars \
        --screenshot="$OUT/worklist.png" --window-size=1100,1500 "file://$(realpath "$OUT/worklist.html")" \
        > /dev/null 2>&1 || echo "(chromium could not take the worklist's screenshot)"
fi

step "5. Evaluate on a labeled folder (the study's Table 2 and Table 3)"
rm -rf "$OUT/labeled"
"$BIN/cxr-train" synth "$OUT/labeled" --per-class 25 --size 299 --seed 7 >/dev/null
"$BIN/cxr-edge" evaluate "$OUT/labeled" --model "$OUT/bundle"

step "6. Grad-CAM from the float models, for review on the training side"
"$BIN/cxr-train" explain "$OUT/run" "$OUT"/usb/clinic-day/{Normal,Lung_Opacity,Viral_Pneumonia,COVID}-1.png \
    --out "$OUT/explain"

step "Where to look"
cat <<MSG
  training curves:        $OUT/run/curves.png
  confusion matrix:       $OUT/run/eval/confusion.png  (table: $OUT/run/eval/confusion.csv)
  evaluation report:      $OUT/run/eval/report.md
  parity report:          $OUT/bundle/parity.md
  bundle for the box:     $OUT/bundle/  (manifest.json, stage1.tflite, stage2.tflite)
  classification report:  $OUT/classification.csv
  clinician's worklist:   $OUT/worklist.html  (open it in any browser; screenshot $OUT/worklist.png)
  signed bundle, its key: $OUT/bundle/manifest.sig, $OUT/trusted-keys/demo-publisher.pub
  heatmaps from the box:  $OUT/heatmaps/  (occlusion, int8 models)
  Grad-CAM overlays:      $OUT/explain/  (float models)
The bundle was trained on synthetic data: its results mean nothing for real patients.
Pre-diagnosis aid, not a diagnosis: a clinician must review every result.
MSG
