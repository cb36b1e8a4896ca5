#!/usr/bin/env bash
# `make pi-check`: the kit of `make pi-kit` (cxr-edge's wheel, bundles, images, this machine's reports) run in
# a Debian bookworm arm64 root (Raspberry Pi OS's userland) under qemu-user emulation, on the code path a real
# Pi takes (a /sys, so XNNPACK is on):
# - for a Raspberry Pi 4 and 5 CPU (cortex-a72, cortex-a76): the base install (the pinned LiteRT), reports
#   compared with this machine's (labels, refer flags and errors equal, probabilities within 2 steps of 1/256,
#   and whether bit for bit), and the DICOM results of `classify --sr` (SR and heatmap secondary capture, from
#   the base install's highdicom) equal to this machine's but for the times they were written, pixel data
#   included where the report was bit for bit;
# - for qemu 7.2's "max" CPU (SME and i8mm, like no Pi), where LiteRT >= 2.1's XNNPACK gives wrong int8 outputs:
#   the bundles' self-test must catch it (fall back with the same labels and refer flags, or refuse); DICOM
#   results compared within the same tolerances.
# The root installs from the kit's box-kit/ with no network (its own network namespace, no interface up).
# Emulated timings say nothing about a real Pi: none are reported. Needs root; the root is built once and
# cached outside the repository (scripts/pi_root.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${CXR_PI_WORK:-$(mktemp -d /tmp/cxr-pi-check.XXXXXX)}
CPUS=${CXR_PI_CPUS:-cortex-a72 cortex-a76}
FAULT_CPUS=${CXR_PI_FAULT_CPUS:-max}
source scripts/pi_root.sh

say "Test material made on this machine: the kit of \`make pi-kit\` (wheel, bundles, images, host reports and SRs)"
KIT="$WORK/kit" BIN="$BIN" bash scripts/pi_kit.sh
rm -rf "$ROOT/tmp/cxr-kit" && cp -r "$WORK/kit" "$ROOT/tmp/cxr-kit"

status=0
run_kit() {  # $1: CPU, $2: mode (pinned or selftest)
    say "CPU $1 (QEMU_CPU=$1, Pi-like /proc/cpuinfo, /sys present): the kit's run-on-pi.sh, $2"
    pi_cpu "$1"
    # the first run installs the venv (base install, pinned LiteRT), the others reuse it
    in_root_offline env CXR_PI_LABEL="$1" CXR_PI_MODE="$2" sh /tmp/cxr-kit/run-on-pi.sh | tee "$WORK/run-$1.log" \
        || status=1
}
for cpu in $CPUS; do run_kit "$cpu" pinned; done
for cpu in $FAULT_CPUS; do run_kit "$cpu" selftest; done
cp "$ROOT"/tmp/cxr-kit/pi-*.json "$WORK/" 2>/dev/null || true
cp -r "$ROOT"/tmp/cxr-kit/pi-*-sr "$WORK/" 2>/dev/null || true
say "Summary, one line per (CPU, bundle)"
grep -hE '^(PASS|FAIL|XNNPACK|  self-test)' "$WORK"/run-*.log || true
say "$([ $status -eq 0 ] && echo PASS || echo FAIL): reports in $WORK"
exit $status
