"""`make node-demo` (scripts/node_demo.sh) as a technician runs it, with the committed tiny bundle instead of the
demo's training run: it stores every image through the storescu lines it prints, the screen answers its login page at
the address it prints, and Ctrl-C stops it with nothing left listening. Loopback only; every wait bounded."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TINY_BUNDLE
from tests.peers import tool

REPO = Path(__file__).resolve().parents[2]


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_node_demo_sends_every_image_shows_the_screen_and_stops_on_ctrl_c(tmp_path):
    tool("storescu")
    env = {**os.environ, "BIN": str(Path(sys.executable).parent), "OUT": str(tmp_path), "BUNDLE": str(TINY_BUNDLE),
           "KEYS": str(tmp_path / "keys"), "NODE_DEMO_SECONDS": "120"}
    demo = subprocess.Popen(["bash", "scripts/node_demo.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    said, deadline = [], time.monotonic() + 240
    try:
        for line in demo.stdout:
            said.append(line)
            if line.startswith("The screen:") or time.monotonic() > deadline:
                break
        text = "".join(said)
        assert "classified: 8 of 8" in text, text
        assert text.count("$ storescu") == 4 and "$ echoscu" in text
        screen = re.search(r"The screen:\s+(http://127\.0\.0\.1:(\d+)/)\s+user: technician\s+password: (\S+)", text)
        assert screen, text
        with urllib.request.urlopen(screen.group(1) + "login", timeout=10) as page:
            assert page.status == 200 and 'id="password"' in page.read().decode()
        dicom_port = int(re.search(r"\$ echoscu .* 127\.0\.0\.1 (\d+)", text).group(1))
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        rest = demo.communicate(timeout=30)[0]
        assert demo.returncode == 0 and "node-demo: the node stopped" in rest, rest
        assert _closed(int(screen.group(2))) and _closed(dicom_port)  # nothing left listening
    finally:
        if demo.poll() is None:
            demo.kill()
