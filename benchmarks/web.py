"""The clinician's screen with a big worklist: a node whose database holds 5,000 classified studies (a clinic's
months), served by a real `cxr-edge serve` on 127.0.0.1; the first worklist page timed over many requests, then
every page of the "all" filter read in turn, twice, with the node's resident memory before and after. Then the
viewer: 20 full-size radiographs (2560 x 3072, 12-bit DICOM) opened at full resolution, each timed cold (the first
request decodes it and writes its copy) and cached, with the node's memory after all 20; and the size of the
vendored viewer files.

    .venv/bin/python -m benchmarks.web [--studies 5000] [--requests 30] [--json web.json]

The time is the request's round trip on loopback with a logged-in session: the server's time and a millisecond
or so of the client's. An untrained alexnet-edge int8 bundle (the page does not depend on training).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
TARGET_FIRST_PAGE_MS = 300
PASSWORD = "benchmark password"


def _port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def fill(data: Path, studies: int) -> None:
    """`studies` classified one-image studies over the last 20 weeks, a tenth reviewed."""
    from cxr_edge.node.state import Instance, State, StudyHeader
    from cxr_edge.reasons import Reason
    from cxr_edge.run.result import Result

    state = State(data)
    now, labels = time.time(), ("normal", "lung_opacity", "viral_pneumonia", "covid19")
    with state.transaction():  # one commit: each study's own transactions are savepoints in it
        for i in range(studies):
            t = now - (studies - i) * (20 * 7 * 86400 / studies)
            uid, study, label = f"1.2.826.0.1.3680043.8.498.9.{i}", f"1.2.826.0.1.3680043.8.498.8.{i}", labels[i % 4]
            p_normal = 0.8 if label == "normal" else 0.3
            refer = i % 7 == 0
            path = f"images/{study}/{uid}.dcm"
            state.add_instance(Instance(uid, "1.2.840.10008.5.1.4.1.1.1.1", study, study + ".1", "dicom:BENCH", path,
                                        t), StudyHeader(f"P{i:06d}", f"Patient^{i}", f"A{i}"))
            rest = (1 - p_normal) / 3
            reasons = (Reason("low_confidence", {"label": "covid19", "p": 0.233, "floor": 0.6}),) if refer else ()
            state.record_result(uid, Result(path, label, (p_normal, rest, rest, rest), refer, reasons))
            state.set_study(study, uid, label, refer, True, t, p_abnormal=1 - p_normal)
            if i % 10 == 0:
                state.append_review(study, "bench", "review", True, label, "", "", at=t + 600)
    state.close()


class Session:
    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[float, str]:
        ms, body = self.get_bytes(path)
        return ms, body.decode()

    def get_bytes(self, path: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        with self.opener.open(self.base + path, timeout=120) as response:
            body = response.read()
        return (time.perf_counter() - start) * 1000, body

    def login(self, name: str) -> None:
        _, html = self.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        data = urllib.parse.urlencode({"csrf": token, "name": name, "password": PASSWORD}).encode()
        with self.opener.open(self.base + "/login", data=data, timeout=60) as response:
            assert response.url.endswith("/worklist"), response.url


VIEWER_IMAGES = 20
FULL_SIZE = (3072, 2560)  # rows, columns: a 35 x 43 cm detector at about 0.14 mm


def add_full_size_images(data: Path, count: int = VIEWER_IMAGES) -> list[str]:
    """`count` full-size 12-bit DX files in the data folder, each a classified study of its own: their SOP UIDs."""
    import numpy as np
    from PIL import Image

    from cxr_edge.node.state import Instance, State, StudyHeader
    from cxr_edge.run.result import Result
    from cxr_train.synth import image_rng, make_image
    from cxr_train.synth_dicom import write_dicom

    state = State(data)
    uids = []
    try:
        for i in range(count):
            small = make_image("covid19", 512, image_rng(7, "covid19", i)).pixels
            big = np.asarray(Image.fromarray(small).resize(FULL_SIZE[::-1], Image.Resampling.BILINEAR), np.uint16) * 16
            uid, study = f"1.2.826.0.1.3680043.8.498.7.{i}", f"1.2.826.0.1.3680043.8.498.6.{i}"
            path = f"images/{study}/{uid}.dcm"
            (data / path).parent.mkdir(parents=True, exist_ok=True)
            write_dicom(data / path, big, bits=12, SOPInstanceUID=uid, StudyInstanceUID=study, ViewPosition="PA",
                        WindowCenter=2048, WindowWidth=4096)
            state.add_instance(Instance(uid, "1.2.840.10008.5.1.4.1.1.1.1", study, study + ".1", "dicom:BENCH", path,
                                        time.time()), StudyHeader(f"V{i}", f"Viewer^{i}"))
            state.record_result(uid, Result(path, "covid19", (0.1, 0.1, 0.1, 0.7)))
            uids.append(uid)
        return uids
    finally:
        state.close()


def _image_ids(data: Path, uids: list[str]) -> list[int]:
    from cxr_edge.node.state import State

    state = State(data)
    try:
        ids = {row["sop_instance_uid"]: i for i, row in enumerate(state.instance_results(), start=1)}
        return [ids[uid] for uid in uids]
    finally:
        state.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(studies: int = 5000, requests: int = 30, log=print) -> dict:
    from scripts.pi_assets import make_bundle

    with tempfile.TemporaryDirectory(prefix="cxr-bench-web-") as tmp:
        work = Path(tmp)
        make_bundle(work / "bundle")
        manifest = json.loads((work / "bundle" / "manifest.json").read_text())
        (work / "bundle" / "manifest.json").write_text(json.dumps({**manifest, "deployable": True}))
        env = {**os.environ, "CXR_EDGE_TRUSTED_KEYS": str(work / "no-trusted-keys"), "CXR_EDGE_PASSWORD": PASSWORD}
        port, data = _port(), work / "data"
        config = work / "node.toml"
        config.write_text(f'model = "{work / "bundle"}"\ndata = "{data}"\n[dicom]\nenabled = false\n'
                          f"[web]\nenabled = true\nport = {port}\n")
        log(f"filling {studies} studies")
        fill(data, studies)
        log(f"writing {VIEWER_IMAGES} full-size radiographs for the viewer")
        viewer_images = _image_ids(data, add_full_size_images(data))
        cli = [sys.executable, "-c", "from cxr_edge.cli import main; main()"]
        subprocess.run([*cli, "user", "add", "bench", "--role", "reviewer", "--config", str(config)], env=env,
                       check=True, capture_output=True)
        node = subprocess.Popen([*cli, "serve", "--config", str(config)], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(work / "serve.log", "w"))
        try:
            session = Session(f"http://{HOST}:{port}")
            deadline = time.monotonic() + 120
            while "web screen on" not in (work / "serve.log").read_text():
                assert node.poll() is None and time.monotonic() < deadline, (work / "serve.log").read_text()
                time.sleep(0.2)
            session.login("bench")
            session.get("/worklist")  # warm: templates compiled, pages of the database read once
            first = sorted(session.get("/worklist?filter=all")[0] for _ in range(requests))
            to_review = sorted(session.get("/worklist")[0] for _ in range(requests))
            rows = session.get("/worklist?filter=all")[1].count('class="patient"')
            pages = -(-studies // 50)
            before = _rss_mb(node.pid)
            walks = []
            for _ in range(2):
                start = time.perf_counter()
                for page in range(pages):
                    session.get(f"/worklist?filter=all&page={page}")
                walks.append(time.perf_counter() - start)
                log(f"paged through {pages} pages in {walks[-1]:.1f} s, node at {_rss_mb(node.pid):.0f} MB")
            after = _rss_mb(node.pid)
            last = sorted(session.get(f"/worklist?filter=all&page={pages - 1}")[0] for _ in range(requests // 3))
            cold, cached, sizes = [], [], []
            before_viewer = _rss_mb(node.pid)
            for image in viewer_images:  # as the viewer asks: the description, then the values
                ms_meta, _ = session.get_bytes(f"/image/{image}/full.json")
                ms_raw, raw = session.get_bytes(f"/image/{image}/full.raw")
                cold.append(ms_meta + ms_raw)
                sizes.append(len(raw))
            for image in viewer_images:
                cached.append(sum(session.get_bytes(f"/image/{image}/full{kind}")[0] for kind in (".json", ".raw")))
            after_viewer = _rss_mb(node.pid)
            log(f"viewer: {len(cold)} images, cold p50 {statistics.median(cold):.0f} ms, cached p50 "
                f"{statistics.median(cached):.0f} ms, node at {after_viewer:.0f} MB")
        finally:
            node.terminate()
            node.wait(timeout=30)
    return {"studies": studies, "rows_on_first_page": rows, "first_page_ms_p50": round(statistics.median(first), 1),
            "first_page_ms_p95": round(first[int(0.95 * (len(first) - 1))], 1),
            "to_review_first_page_ms_p50": round(statistics.median(to_review), 1),
            "last_page_ms_p50": round(statistics.median(last), 1), "target_first_page_ms": TARGET_FIRST_PAGE_MS,
            "pages": pages, "seconds_per_walk": [round(w, 1) for w in walks],
            "rss_mb_before_paging": round(before, 1), "rss_mb_after_paging_twice": round(after, 1),
            "rss_growth_mb": round(after - before, 1),
            "viewer_images": len(cold), "viewer_image_pixels": f"{FULL_SIZE[1]}x{FULL_SIZE[0]}, 12-bit",
            "viewer_megabytes_per_image": round(statistics.median(sizes) / 2**20, 1),
            "viewer_cold_ms_p50": round(statistics.median(cold), 1), "viewer_cold_ms_max": round(max(cold), 1),
            "viewer_cached_ms_p50": round(statistics.median(cached), 1),
            "rss_mb_before_viewer": round(before_viewer, 1), "rss_mb_after_viewer": round(after_viewer, 1),
            "vendored_viewer_kb": _vendored_kb()}


def _vendored_kb() -> dict:
    folder = Path(__file__).resolve().parents[1] / "edge" / "cxr_edge" / "web" / "static" / "vendor"
    return {path.name: round(path.stat().st_size / 1024) for path in sorted(folder.glob("*"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = measure(args.studies, args.requests)
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(figures, indent=2))
    verdict = "within" if figures["first_page_ms_p95"] <= TARGET_FIRST_PAGE_MS else "OVER"
    print(f"first page of {figures['studies']} studies: p50 {figures['first_page_ms_p50']} ms, p95 "
          f"{figures['first_page_ms_p95']} ms ({verdict} the {TARGET_FIRST_PAGE_MS} ms target); memory "
          f"{figures['rss_mb_before_paging']} -> {figures['rss_mb_after_paging_twice']} MB after paging through "
          f"{figures['pages']} pages twice")
    print(f"viewer: {figures['viewer_images']} radiographs of {figures['viewer_image_pixels']} opened at full "
          f"resolution: cold p50 {figures['viewer_cold_ms_p50']} ms (max {figures['viewer_cold_ms_max']}), cached p50 "
          f"{figures['viewer_cached_ms_p50']} ms; memory {figures['rss_mb_before_viewer']} -> "
          f"{figures['rss_mb_after_viewer']} MB; vendored files {figures['vendored_viewer_kb']} kB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
