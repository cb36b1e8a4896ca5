"""The clinician's screen with a big worklist: a node whose database holds 5,000 classified studies (a clinic's
months), served by a real `cxr-edge serve` on 127.0.0.1; the first worklist page timed over many requests, then
every page of the "all" filter read in turn, twice, with the node's resident memory before and after.

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
        start = time.perf_counter()
        with self.opener.open(self.base + path, timeout=60) as response:
            body = response.read().decode()
        return (time.perf_counter() - start) * 1000, body

    def login(self, name: str) -> None:
        _, html = self.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        data = urllib.parse.urlencode({"csrf": token, "name": name, "password": PASSWORD}).encode()
        with self.opener.open(self.base + "/login", data=data, timeout=60) as response:
            assert response.url.endswith("/worklist"), response.url


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
        finally:
            node.terminate()
            node.wait(timeout=30)
    return {"studies": studies, "rows_on_first_page": rows, "first_page_ms_p50": round(statistics.median(first), 1),
            "first_page_ms_p95": round(first[int(0.95 * (len(first) - 1))], 1),
            "to_review_first_page_ms_p50": round(statistics.median(to_review), 1),
            "last_page_ms_p50": round(statistics.median(last), 1), "target_first_page_ms": TARGET_FIRST_PAGE_MS,
            "pages": pages, "seconds_per_walk": [round(w, 1) for w in walks],
            "rss_mb_before_paging": round(before, 1), "rss_mb_after_paging_twice": round(after, 1),
            "rss_growth_mb": round(after - before, 1)}


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
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
