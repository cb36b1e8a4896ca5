"""The clinic node's test harness, written once: `cxr-edge serve` in its own process with a configuration on ports
the test picks, DX files of the synthetic radiographs, and dcmtk's storescu as the X-ray unit (all on loopback)."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import uid as uids

from cxr_edge.node.state import State
from cxr_train.synth_dicom import write_dicom

from tests.peers import tool

HOST = "127.0.0.1"
# storescu proposes uncompressed syntaxes unless told; one flag per compressed syntax (dcmtk 3.6.7's storescu)
SYNTAXES = {uids.ExplicitVRLittleEndian: [], uids.ImplicitVRLittleEndian: [], uids.ExplicitVRBigEndian: [],
            uids.DeflatedExplicitVRLittleEndian: ["-xd"], uids.RLELossless: ["-xr"],
            uids.JPEGLosslessSV1: ["-xs"], uids.JPEGLSLossless: ["-xt"], uids.JPEG2000Lossless: ["-xv"],
            uids.JPEG2000: ["-xw"], uids.JPEGExtended12Bit: ["-xx"], uids.JPEGLSNearLossless: ["-xu"],
            uids.JPEGBaseline8Bit: ["-xy"]}
# (JPEG Lossless process 14 with another predictor than 1: storescu has no flag that proposes it)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _config(tmp_path: Path, bundle: Path, port: int, **dicom) -> Path:
    settings = {"allowed_callers": ["XRAYROOM1"], "study_stable_seconds": 1, "min_free_mb": 1, **dicom}
    lines = [f'model = "{bundle}"', f'data = "{tmp_path / "data"}"', "[dicom]", f'bind = "{HOST}"', f"port = {port}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path = tmp_path / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _radiographs(folder: Path, synth_small: Path, count: int = 3, study: str | None = None,
                 syntaxes=(uids.ExplicitVRLittleEndian,)) -> list[Path]:
    """`count` DX files of the synthetic radiographs per syntax, in one study, with the made-up patient."""
    folder.mkdir(parents=True, exist_ok=True)
    study = study or uids.generate_uid()
    series = uids.generate_uid()
    names = sorted(synth_small.glob("*/images/*.png"))
    files = []
    for syntax in syntaxes:
        for i in range(count):
            gray = np.asarray(Image.open(names[i * 5 % len(names)]).convert("L").resize((256, 256)), np.uint16)
            path = folder / f"{len(files):03d}.dcm"
            bits = 8 if syntax == uids.JPEGBaseline8Bit else 12  # baseline JPEG holds 8 bits
            files.append(write_dicom(path, gray if bits == 8 else gray * 16, bits=bits, syntax=syntax,
                                     StudyInstanceUID=study, SeriesInstanceUID=series, ViewPosition="PA"))
    return files


class Node:
    """`cxr-edge serve` in its own process, as systemd runs it."""

    def __init__(self, config: Path):
        self.config = config
        self.log = config.parent / "serve.log"
        self.process = None

    def start(self) -> "Node":
        before = len(self.text())  # a restart appends to the same log
        self.process = subprocess.Popen([sys.executable, "-c", "from cxr_edge.cli import main; main()", "serve",
                                         "--config", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "a"))
        deadline = time.monotonic() + 60
        while "listening as" not in self.text()[before:]:
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)
        return self

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, sig=signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=20)

    def rows(self) -> list[tuple]:
        state = State(self.config.parent / "data")
        try:
            return [(row["sop_instance_uid"], row["label"]) for row in state.instance_results()]
        finally:
            state.close()

    def wait_classified(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while sum(label is not None for _, label in self.rows()) < count:
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.2)


def _store(port: int, files, *flags, caller="XRAYROOM1") -> subprocess.CompletedProcess:
    """storescu, verbose (it prints each store response), going on after a failed store as a unit's queue does."""
    return subprocess.run([tool("storescu"), "-v", "--no-halt", *flags, "-aet", caller, "-aec", "CXREDGE", HOST,
                           str(port), *map(str, files)], capture_output=True, text=True, timeout=120)


def _responses(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split("(", 1)[1].rstrip(")") for line in result.stderr.splitlines()
            if line.startswith("I: Received Store Response")]
