#!/usr/bin/env bash
# The end-to-end demo: synthetic data -> training -> int8 bundle -> classify a "USB stick" -> evaluate.
# Called by `make demo` with BIN (the venv's bin folder) and OUT (the output folder) set.
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-demo-output}
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. Synthetic chest X-rays in the COVID-19 Radiography Database layout"
"$BIN/cxr-train" synth "$OUT/data" --per-class 60 --size 128 --seed 0
"$BIN/cxr-train" split "$OUT/data" --out "$OUT/split.csv" --seed 0

step "2. Train both stages (tiny preset, so the demo finishes in minutes)"
"$BIN/cxr-train" fit "$OUT/data" --out "$OUT/run" --split "$OUT/split.csv" --preset tiny \
    --epochs-stage1 20 --epochs-stage2 25 --overwrite

step "3. Convert to an int8 TFLite bundle and check it against the float models"
set +e
"$BIN/cxr-convert" "$OUT/run" --out "$OUT/bundle"
gate=$?
set -e
[ "$gate" -le 1 ] || exit "$gate"

step "Where to look"
cat <<MSG
  training curves:        $OUT/run/curves.png
  confusion matrix:       $OUT/run/eval/confusion.png  (table: $OUT/run/eval/confusion.csv)
  classification report:  $OUT/run/eval/report.md
  parity report:          $OUT/bundle/parity.md
  bundle for the box:     $OUT/bundle/  (manifest.json, stage1.tflite, stage2.tflite)
The bundle was trained on synthetic data: its results mean nothing for real patients.
Pre-diagnosis aid, not a diagnosis: a clinician must review every result.
MSG
