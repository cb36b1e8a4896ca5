"""One classify run instrumented for load tests: peak memory, open file descriptors before and after, and
throughput in each quarter of the run. Used by benchmarks/load.py and the test suite, in a fresh process:

    python -m cxr_edge.run.soak BUNDLE FOLDER
"""

from __future__ import annotations

import json
import os
import sys
import time

from cxr_edge.bundle.load import load_bundle
from cxr_edge.run.bench import peak_memory_mb
from cxr_edge.run.classify import Classifier, run_folder


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


def soak(bundle: str, folder: str) -> dict:
    classifier = Classifier(load_bundle(bundle, allow_unverified=True))
    fds_before = open_fds()
    stamps: list[float] = []
    start = time.perf_counter()
    results, summary = run_folder(classifier, folder, progress=lambda done, total: stamps.append(time.perf_counter()))
    quarters = []
    n = len(stamps)
    for q in range(4):
        lo, hi = q * n // 4, (q + 1) * n // 4
        t0 = start if lo == 0 else stamps[lo - 1]
        quarters.append(round((hi - lo) / (stamps[hi - 1] - t0), 1) if hi > lo else None)
    return {"images": summary.images, "errors": summary.errors, "peak_memory_mb": peak_memory_mb(),
            "open_fds_before": fds_before, "open_fds_after": open_fds(), "images_per_s_by_quarter": quarters}


if __name__ == "__main__":
    print(json.dumps(soak(sys.argv[1], sys.argv[2])))
