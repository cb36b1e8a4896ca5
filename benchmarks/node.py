"""The clinic node (`cxr-edge serve`) against a real DICOM peer, side by side in one run: dcmtk's storescu sends
the same full-size DX files to the node (classifying as it goes) and to dcmtk's own storescp (writing them to
disk), uncompressed and JPEG Lossless; then one image a second offered, the time from the C-STORE response to the
image's result in the database; then the node's memory over many received images.

    .venv/bin/python -m benchmarks.node [--size 2560] [--images 40] [--memory-images 500] [--json node.json]
    .venv/bin/python -m benchmarks.node --parts candidate   # latency and memory without and with a candidate

An untrained alexnet-edge int8 bundle, marked deployable here (speed does not depend on training). Loopback only
(127.0.0.1, ports picked here). Needs dcmtk (storescu, storescp).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"
SYNTAXES = {"uncompressed": ("1.2.840.10008.1.2.1", []), "jpeg-lossless": ("1.2.840.10008.1.2.4.70", ["-xs"])}
TARGET_RATIO, TARGET_P95_S, TARGET_PEAK_MB = 0.7, 1.5, 350
ROUNDS = 3  # each way, with and without a candidate


def _port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def write_files(folder: Path, count: int, size: int, syntax: str) -> list[Path]:
    """`count` DX files of `size` px (12-bit synthetic radiographs, one study), new UIDs each."""
    from PIL import Image
    from pydicom import uid

    from cxr_train.synth import image_rng, make_image
    from cxr_train.synth_dicom import write_dicom

    folder.mkdir(parents=True, exist_ok=True)
    study, series = uid.generate_uid(), uid.generate_uid()
    base = [np.asarray(Image.fromarray(make_image(label, 512, image_rng(7, label, 0)).pixels)
                       .resize((size, size), Image.Resampling.BICUBIC), np.float64)
            for label in ("normal", "covid19", "lung_opacity", "viral_pneumonia")]
    files = []
    for i in range(count):
        stored = np.clip(np.rint(base[i % 4] / 255 * 4095 + np.random.default_rng(i).normal(0, 8, base[0].shape)),
                         0, 4095)
        files.append(write_dicom(folder / f"IM{i:04d}.dcm", stored, syntax=syntax, StudyInstanceUID=study,
                                 SeriesInstanceUID=series, ViewPosition="PA"))
    return files


def _send(port: int, files, flags, aet="BENCH", called="CXREDGE") -> float:
    """Seconds storescu takes to send `files` in one association (every response received)."""
    start = time.perf_counter()
    subprocess.run(["storescu", *flags, "-aet", aet, "-aec", called, HOST, str(port), *map(str, files)],
                   check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def storescp_seconds(files, flags, out: Path) -> float:
    port = _port()
    out.mkdir()
    scp = subprocess.Popen(["storescp", "+xa", "-aet", "CXREDGE", "--output-directory", str(out), str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        return _send(port, files, flags)
    finally:
        scp.terminate()
        scp.wait(timeout=10)


class Node:
    def __init__(self, work: Path, bundle: Path, candidate: Path | None = None):
        self.port = _port()
        work.mkdir(parents=True, exist_ok=True)
        self.data = work / "data"
        self.config = work / "node.toml"
        self.config.write_text(f'model = "{bundle}"\ndata = "{self.data}"\n[dicom]\nbind = "{HOST}"\n'
                               f'port = {self.port}\nallowed_callers = ["BENCH"]\nstudy_stable_seconds = 1\n'
                               'min_free_mb = 100\n' + (f'[candidate]\nmodel = "{candidate}"\n' if candidate else ''))
        self.process = subprocess.Popen([sys.executable, "-c", "from cxr_edge.cli import main; main()", "serve",
                                         "--config", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def classified(self) -> dict[str, float]:
        if not (self.data / "node.sqlite3").exists():
            return {}
        from cxr_edge.node.state import State

        state = State(self.data)
        try:
            return {r["sop_instance_uid"]: r["classified"] for r in state.instance_results() if r["label"] is not None}
        finally:
            state.close()

    def wait_classified(self, count: int, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while len(self.classified()) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the node classified {len(self.classified())} of {count} images")
            time.sleep(0.1)

    def shadow_classified(self, count: int, timeout: float = 300) -> int:
        """Wait until the candidate has classified `count` images (or `timeout`); how many it has."""
        from cxr_edge.node.state import State

        deadline = time.monotonic() + timeout
        while True:
            state = State(self.data)
            try:
                done = state.shadow_total()
            finally:
                state.close()
            if done >= count or time.monotonic() > deadline:
                return done
            time.sleep(0.2)

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, peak resident) of the node's process, MB."""
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines())
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


def throughput(work: Path, bundle: Path, size: int, images: int, log) -> dict:
    rows = {}
    for name, (syntax, flags) in SYNTAXES.items():
        files = write_files(work / f"send-{name}", images, size, syntax)
        dcmtk = storescp_seconds(files, flags, work / f"storescp-{name}")
        node = Node(work / f"node-{name}", bundle)
        try:
            received = _send(node.port, files, flags)
            start = time.perf_counter()
            node.wait_classified(images)
            classified_after = time.perf_counter() - start
        finally:
            node.stop()
        ratio = dcmtk / received
        rows[name] = {"storescp_images_per_s": round(images / dcmtk, 2), "node_images_per_s": round(images / received, 2),
                      "ratio": round(ratio, 3), "classified_s_after_last_response": round(classified_after, 2)}
        log(f"{name:14s} storescp {images / dcmtk:7.2f} img/s  node {images / received:7.2f} img/s  ratio "
            f"{ratio:.3f} (target {TARGET_RATIO})  last result {classified_after:.1f} s after the last response")
    return rows


def latency(work: Path, bundle: Path, size: int, count: int, log, candidate: Path | None = None,
            name: str = "latency") -> dict:
    """One image a second: seconds from storescu's return (the C-STORE response) to the result's commit; with
    `candidate`, a candidate bundle classifying beside the active one (shadow mode)."""
    import pydicom

    files = write_files(work / f"send-{name}", count, size, SYNTAXES["uncompressed"][0])
    node = Node(work / f"node-{name}", bundle, candidate)
    answered = {}
    try:
        for path in files:
            start = time.monotonic()
            _send(node.port, [path], [])
            answered[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = time.time()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
        node.wait_classified(count)
        done = node.classified()
        shadow = node.shadow_classified(count if candidate else 0)
        peak = node.memory_mb()[1]
    finally:
        node.stop()
    seconds = np.array([done[uid] - t for uid, t in answered.items()])
    p50, p95 = np.percentile(seconds, [50, 95])
    beside = f" with a candidate beside it ({shadow} images classified by it)" if candidate else ""
    log(f"latency at 1 image/s ({count} images){beside}: response to result p50 {p50:.2f} s, p95 {p95:.2f} s "
        f"(target p95 <= {TARGET_P95_S} s); peak memory {peak:.0f} MB")
    return {"images": count, "p50_s": round(float(p50), 3), "p95_s": round(float(p95), 3),
            "peak_mb": round(peak, 1), **({"candidate_classified": shadow} if candidate else {})}


def with_candidate(work: Path, bundle: Path, size: int, count: int, log) -> dict:
    """The receive-to-result latency and the node's peak memory without and with a candidate bundle (shadow mode),
    side by side in one run: the candidate must not delay the active result."""
    candidate = work / "candidate-bundle"
    shutil.copytree(bundle, candidate)
    manifest = json.loads((candidate / "manifest.json").read_text())
    (candidate / "manifest.json").write_text(json.dumps({**manifest, "created": "candidate"}))  # another bundle
    rounds = {"without": [], "with": []}
    for i in range(ROUNDS):  # alternated, so that a drift of the machine falls on both
        rounds["without"].append(latency(work, bundle, size, count, log, name=f"without-candidate-{i}"))
        rounds["with"].append(latency(work, bundle, size, count, log, candidate, name=f"with-candidate-{i}"))
    p95 = {k: float(np.mean([r["p95_s"] for r in v])) for k, v in rounds.items()}
    peak = {k: float(np.mean([r["peak_mb"] for r in v])) for k, v in rounds.items()}
    spread = max(r["p95_s"] for r in rounds["without"]) - min(r["p95_s"] for r in rounds["without"])
    log(f"with a candidate / without (mean of {ROUNDS} alternated rounds each): p95 latency "
        f"x{p95['with'] / p95['without']:.2f} ({p95['without']:.3f} s -> {p95['with']:.3f} s; the runs without span "
        f"{spread:.3f} s), peak memory x{peak['with'] / peak['without']:.2f} ({peak['without']:.0f} -> "
        f"{peak['with']:.0f} MB)")
    return {**rounds, "p95_ratio": round(p95["with"] / p95["without"], 3),
            "peak_memory_ratio": round(peak["with"] / peak["without"], 3), "p95_spread_without_s": round(spread, 3)}


def memory(work: Path, bundle: Path, size: int, count: int, log) -> dict:
    """The node's resident memory after each hundred received images, and its peak."""
    node = Node(work / "node-memory", bundle)
    after = []
    try:
        for start in range(0, count, 100):
            files = write_files(work / f"send-memory-{start}", min(100, count - start), size,
                                SYNTAXES["uncompressed"][0])
            _send(node.port, files, [])
            node.wait_classified(start + len(files))
            after.append(round(node.memory_mb()[0], 1))
            shutil.rmtree(work / f"send-memory-{start}")
        peak = node.memory_mb()[1]
    finally:
        node.stop()
    growth = after[-1] - after[0]
    log(f"memory over {count} images of {size} px: resident after each 100 {after} MB, peak {peak:.0f} MB "
        f"(target <= {TARGET_PEAK_MB}), growth first to last hundred {growth:+.1f} MB")
    return {"images": count, "size": size, "resident_mb_after_each_100": after, "peak_mb": round(peak, 1),
            "growth_mb": round(growth, 1)}


def measure(size: int = 2560, images: int = 40, memory_images: int = 500, memory_size: int = 2560,
            latency_images: int = 30, log=print, parts=("throughput", "latency", "memory")) -> dict:
    from scripts.pi_assets import make_bundle

    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: install Debian's dcmtk (apt-get install dcmtk)")
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
               "size": size, "images": images}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_bundle(work / "bundle")
        manifest = json.loads((work / "bundle" / "manifest.json").read_text())
        (work / "bundle" / "manifest.json").write_text(json.dumps({**manifest, "deployable": True}))
        os.environ["CXR_EDGE_TRUSTED_KEYS"] = str(work / "no-trusted-keys")  # the unsigned benchmark bundle
        log(f"{images} DX files of {size} px per syntax, storescu -> node vs storescu -> storescp; "
            f"alexnet-edge int8, untrained; {figures['machine']}")
        if "throughput" in parts:
            figures["throughput"] = throughput(work, work / "bundle", size, images, log)
        if "latency" in parts:
            figures["latency"] = latency(work, work / "bundle", size, latency_images, log)
        if "memory" in parts:
            figures["memory"] = memory(work, work / "bundle", memory_size, memory_images, log)
        if "candidate" in parts:
            figures["candidate"] = with_candidate(work, work / "bundle", size, latency_images, log)
    return figures


def main() -> None:
    from cxr_train.logs import quiet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2560)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--memory-images", type=int, default=500)
    parser.add_argument("--memory-size", type=int, default=2560)
    parser.add_argument("--latency-images", type=int, default=30)
    parser.add_argument("--parts", default="throughput,latency,memory", help="Which measurements, comma-separated.")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="Also show TensorFlow's own log lines.")
    args = parser.parse_args()
    quiet(args.verbose)
    figures = measure(args.size, args.images, args.memory_images, args.memory_size, args.latency_images,
                      parts=args.parts.split(","))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
