"""deploy/: the clinic node's service, the stick mounting for Raspberry Pi OS Lite, and the example configuration."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxr_edge.node.config import load_config

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
INSTALLED = "/opt/cxr-edge/bin/cxr-edge"


def _verify(tmp_path: Path, unit: str, text: str) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` on the unit as installed, but for its ExecStart pointing at this test's cxr-edge
    (verify checks that the command exists)."""
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (Debian's systemd package)")
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / unit
    path.write_text(text.replace(INSTALLED, str(Path(sys.executable).parent / "cxr-edge")))
    instance = unit.replace("@.", "@sda1.")
    return subprocess.run(["systemd-analyze", "verify", str(tmp_path / instance)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})


@pytest.mark.parametrize("unit", ["cxr-edge.service", "cxr-edge-stick@.service"])
def test_the_units_verify_without_a_warning(tmp_path, unit):
    result = _verify(tmp_path, unit, (DEPLOY / unit).read_text())
    assert result.returncode == 0 and str(tmp_path) not in result.stdout + result.stderr, result.stderr
    # the check can fail: the same unit with a misspelt key is reported
    broken = _verify(tmp_path, unit.replace("cxr-edge", "broken"),
                     (DEPLOY / unit).read_text().replace("RemainAfterExit=", "RemainAfterExt=")
                     .replace("ProtectSystem=", "ProtectSystm="))
    assert "Unknown key" in broken.stderr


def test_the_service_is_confined_to_the_data_folder():
    unit = (DEPLOY / "cxr-edge.service").read_text().splitlines()
    for line in ("ProtectSystem=strict", "ReadWritePaths=/var/lib/cxr-edge", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "Restart=on-failure", "User=cxr-edge", f"ExecStart={INSTALLED} serve --config /etc/cxr-edge/node.toml"):
        assert line in unit, line


def test_the_example_configuration_is_valid_and_the_sticks_rule_starts_the_mount_service():
    config = load_config(DEPLOY / "node.toml")
    assert config.data == Path("/var/lib/cxr-edge") and config.dicom.allowed_callers == ("XRAYROOM1",)
    assert config.dicom.bind == "127.0.0.1" and not config.usb.enabled and config.usb.mount_points_only
    # the screen on, on the box's own display until the technician sets an address; the trust folder named
    assert config.web.enabled and config.web.bind == "127.0.0.1"
    assert config.trusted_keys == Path("/etc/cxr-edge/trusted-keys")
    rule = (DEPLOY / "99-cxr-edge-sticks.rules").read_text()
    assert 'ENV{SYSTEMD_WANTS}+="cxr-edge-stick@%k.service"' in rule
    assert "ro,nosuid,nodev,noexec" in (DEPLOY / "cxr-edge-stick@.service").read_text()
