"""`cxr-edge bench`: where the box's time goes, per stage and end to end."""

from __future__ import annotations

import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cxr_edge.inputs.discover import find_image_names
from cxr_edge.inputs.images import prepare
from cxr_edge.models.interpreter import backend
from cxr_edge.run.classify import Classifier, classify_paths


def generated_images(folder: Path, count: int, size: int = 299) -> list[Path]:
    """Smooth random grayscale PNGs: decoding and resizing cost what a real radiograph of that size costs."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        coarse = rng.uniform(0, 255, (8, 8)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(coarse, "F").resize((size, size), Image.Resampling.BICUBIC))
        noisy = np.clip(smooth + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)
        path = folder / f"bench-{i:05d}.png"
        Image.fromarray(noisy, "L").save(path)
        paths.append(path)
    return paths


def per_image_ms(fn, inputs, repeats: int = 1) -> float:
    """Mean milliseconds of `fn` per input, after one warm-up call (the first invoke allocates; Keras traces)."""
    fn(inputs[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for x in inputs:
            fn(x)
    return 1000 * (time.perf_counter() - start) / (repeats * len(inputs))


def _stats(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "images_per_s": round(1000 * len(ms) / float(ms.sum()), 2) if ms.sum() else None}


def peak_memory_mb() -> float:
    """Peak resident memory of this process.

    On Linux, VmHWM from /proc: ru_maxrss would also count the parent's memory that a subprocess
    carried across fork() before exec().
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)


def run_bench(classifier: Classifier, folder: Path | None, count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(folder) if folder else Path(tmp)
        names = find_image_names(root)[:count] if folder else [p.name for p in generated_images(root, count)]
        if not names:
            raise ValueError(f"no images in {folder}")
        decode, inputs = [], []
        for name in names:
            start = time.perf_counter()
            try:
                inputs.append(prepare(root / name, classifier.size))
            except ValueError:
                continue
            decode.append(time.perf_counter() - start)
        stage_times = {"stage1": [], "stage2": []}
        for pixels in inputs:
            for name, model in (("stage1", classifier.stage1), ("stage2", classifier.stage2)):
                start = time.perf_counter()
                model.predict(pixels[np.newaxis])
                stage_times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        n = sum(1 for _ in classify_paths(classifier, root, names))
        end_to_end = time.perf_counter() - start
    decode_total, infer_total = sum(decode), sum(map(sum, stage_times.values()))
    b = backend()
    return {"images": n, "interpreter": f"{b.name} {b.version}", "machine": platform.machine(),
            "quantization": classifier.bundle.manifest.get("quantization"), "input_size": classifier.size,
            "decode_resize": _stats(decode), "stage1": _stats(stage_times["stage1"]),
            "stage2": _stats(stage_times["stage2"]),
            "inference": {"images_per_s": round(len(inputs) / infer_total, 2) if infer_total else None},
            "end_to_end": {"images_per_s": round(n / end_to_end, 2), "seconds": round(end_to_end, 3)},
            "time_split": {"decode_resize": round(decode_total / (decode_total + infer_total), 3),
                           "inference": round(infer_total / (decode_total + infer_total), 3)},
            "peak_memory_mb": peak_memory_mb(), "selftest": classifier.selftest.as_dict(),
            "selftest_summary": classifier.selftest.summary(), "selftest_warning": classifier.selftest.warning(),
            **_origin(classifier.bundle.origin)}


def _origin(origin) -> dict:
    if origin is None:
        return {"origin": None, "origin_summary": "origin: not checked", "origin_warning": None}
    return {"origin": origin.as_dict(), "origin_summary": origin.summary(), "origin_warning": origin.warning()}


def format_bench(r: dict) -> str:
    lines = [f"{r['images']} images, {r['quantization']} {r['input_size']}x{r['input_size']}, {r['interpreter']} "
             f"on {r['machine']}",
             f"{'step':16s}{'p50 ms':>10s}{'p95 ms':>10s}{'images/s':>10s}"]
    for step in ("decode_resize", "stage1", "stage2"):
        s = r[step]
        lines.append(f"{step:16s}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['images_per_s'] or 0:>10.1f}")
    lines += [f"inference only: {r['inference']['images_per_s']} images/s; end to end (decode overlapping "
              f"inference): {r['end_to_end']['images_per_s']} images/s",
              f"time split: decode+resize {r['time_split']['decode_resize']:.0%}, inference "
              f"{r['time_split']['inference']:.0%}; peak memory {r['peak_memory_mb']} MB",
              r["selftest_summary"], *([r["selftest_warning"]] if r["selftest_warning"] else []),
              r["origin_summary"], *([r["origin_warning"]] if r["origin_warning"] else [])]
    return "\n".join(lines)
