#!/usr/bin/env bash
# `make pi-check`: the kit of `make pi-kit` (cxr-edge's wheel, bundles, images, this machine's reports) run in
# a Debian bookworm arm64 root (Raspberry Pi OS's userland) under qemu-user emulation, on the code path a real
# Pi takes (a /sys, so XNNPACK is on), for a Raspberry Pi 4 and 5 CPU. run-on-pi.sh installs the base install
# (the pinned LiteRT) and compares its reports with this machine's bit for bit, then installs the newest LiteRT
# and shows what the bundles' self-test does with it. Emulated timings say nothing about a real Pi: none are
# reported. Needs root; the root is built once and cached outside the repository (scripts/pi_root.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${CXR_PI_WORK:-$(mktemp -d /tmp/cxr-pi-check.XXXXXX)}
CPUS=${CXR_PI_CPUS:-cortex-a72 cortex-a76}
source scripts/pi_root.sh

say "Test material made on this machine: the kit of \`make pi-kit\` (wheel, bundles, images, host reports)"
KIT="$WORK/kit" BIN="$BIN" bash scripts/pi_kit.sh
rm -rf "$ROOT/tmp/cxr-kit" && cp -r "$WORK/kit" "$ROOT/tmp/cxr-kit"

status=0
for cpu in $CPUS; do
    say "Raspberry Pi CPU $cpu (QEMU_CPU=$cpu, Pi-like /proc/cpuinfo, /sys present): the kit's run-on-pi.sh"
    pi_cpu "$cpu"
    # the first CPU's run installs the venvs (pinned and newest LiteRT), the second reuses them
    in_root env CXR_PI_LABEL="$cpu" CXR_PI_NEWEST=1 sh /tmp/cxr-kit/run-on-pi.sh | tee "$WORK/run-$cpu.log" \
        || status=1
done
cp "$ROOT"/tmp/cxr-kit/pi-*.json "$WORK/" 2>/dev/null || true
say "Summary, one line per (CPU, bundle, interpreter)"
grep -hE '^(PASS|FAIL|XNNPACK|  self-test)' "$WORK"/run-*.log || true
say "$([ $status -eq 0 ] && echo PASS || echo FAIL): reports in $WORK"
exit $status
