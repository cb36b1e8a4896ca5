#!/bin/sh
# Installs the clinic node as a systemd service on Raspberry Pi OS 64-bit (or any systemd Linux), after
# `sh box-kit/install.sh` put cxr-edge in /opt/cxr-edge: a system user cxr-edge, /etc/cxr-edge/node.toml (kept
# if present), the service, and on Raspberry Pi OS Lite (--lite) the udev rule and mount service for sticks.
# Run as root, from the repository or box kit folder that holds deploy/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "install-service.sh: run as root (sudo sh $0)" >&2; exit 2; }
[ -x /opt/cxr-edge/bin/cxr-edge ] || { echo "install-service.sh: no /opt/cxr-edge/bin/cxr-edge: run box-kit/install.sh first" >&2; exit 1; }
id cxr-edge >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cxr-edge --shell /usr/sbin/nologin cxr-edge
install -d -m 0755 /etc/cxr-edge
[ -f /etc/cxr-edge/node.toml ] || install -m 0644 "$here/node.toml" /etc/cxr-edge/node.toml
install -d -m 0700 -o cxr-edge -g cxr-edge /var/lib/cxr-edge
install -m 0644 "$here/cxr-edge.service" /etc/systemd/system/cxr-edge.service
if [ "${1:-}" = "--lite" ]; then
    install -m 0644 "$here/cxr-edge-stick@.service" /etc/systemd/system/cxr-edge-stick@.service
    install -m 0644 "$here/99-cxr-edge-sticks.rules" /etc/udev/rules.d/99-cxr-edge-sticks.rules
    udevadm control --reload
fi
systemctl daemon-reload
echo "installed: edit /etc/cxr-edge/node.toml, copy the bundle to /var/lib/cxr-edge/, then"
echo "  sudo -u cxr-edge /opt/cxr-edge/bin/cxr-edge serve --config /etc/cxr-edge/node.toml --check"
echo "  sudo systemctl enable --now cxr-edge"
