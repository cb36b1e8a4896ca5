"""The HTML worklist on a full-size stick: `cxr-edge classify` in its own process, as on the box, on 16
full-size (2560 px) uncompressed DICOM radiographs, with and without the report and heatmaps; images/s, the
process's peak memory (decode threads included: they are threads of it), and the sizes of what it writes.

    .venv/bin/python -m benchmarks.worklist [--size 2560] [--images 16] [--json worklist.json]
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


RUNS = {  # name: extra classify arguments ({out} is a fresh folder per run)
    "csv": ["--output", "{out}/report.csv"],
    "csv + heatmaps": ["--output", "{out}/report.csv", "--heatmaps", "{out}/heat"],
    "html": ["--output", "{out}/report.html"],
    "html + heatmaps": ["--output", "{out}/report.html", "--heatmaps", "{out}/heat"],
}


def run_classify(folder: Path, bundle: Path, extra: list[str]) -> tuple[float, float]:
    """Seconds and peak memory (MB) of one `cxr-edge classify` process."""
    command = [str(Path(sys.executable).with_name("cxr-edge")), "classify", str(folder), "--model", str(bundle),
               "--format", "csv", "--allow-unverified", *extra]
    # Linux carries a task's peak memory across exec, so a child forked straight from this process (with
    # TensorFlow loaded, as under `make bench`) would report this process's peak: a small helper forks it instead
    helper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
              "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", helper, *command], capture_output=True, text=True, check=True).stdout
    seconds, peak_kb = out.split()
    return float(seconds), int(peak_kb) / 1024


def measure(size: int = 2560, images: int = 16, log=print) -> dict:
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
               "size": size, "images": images, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # made in a process of its own: a child's peak memory counts the parent's at fork, and TensorFlow's
        # would be 1 GB of it
        subprocess.run([sys.executable, "scripts/pi_assets.py", "bundle", str(tmp / "bundle")], check=True,
                       capture_output=True, cwd=Path(__file__).resolve().parents[1])
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from benchmarks.clinic import "
                        "write_images; write_images(Path(sys.argv[1]), 'dicom-explicit', int(sys.argv[2]), "
                        "int(sys.argv[3]))", str(tmp / "stick"), str(images), str(size)], check=True,
                       cwd=Path(__file__).resolve().parents[1])
        figures["parent_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        log(f"{images} uncompressed DICOM images of {size} px; alexnet-edge int8, untrained; {figures['machine']}; "
            f"this process {figures['parent_peak_mb']} MB (a floor under each child's peak)")
        log(f"{'classify with':18s}{'images/s':>10s}{'peak MB':>9s}{'report kB':>11s}{'heatmap kB':>12s}{'heatmap px':>12s}")
        for name, extra in RUNS.items():
            out = tmp / name.replace(" ", "").replace("+", "-")
            out.mkdir()
            seconds, peak = run_classify(tmp / "stick", tmp / "bundle", [a.format(out=out) for a in extra])
            report = next(out.glob("report.*"))
            heat = sorted((out / "heat").glob("*.png")) if (out / "heat").exists() else []
            row = {"images_per_s": round(images / seconds, 2), "peak_memory_mb": round(peak),
                   "report_kb": round(report.stat().st_size / 1024),
                   "heatmap_kb": round(sum(p.stat().st_size for p in heat) / len(heat) / 1024) if heat else None,
                   "heatmap_px": _size(heat[0]) if heat else None}
            figures["runs"][name] = row
            log(f"{name:18s}{row['images_per_s']:>10.2f}{row['peak_memory_mb']:>9d}{row['report_kb']:>11d}"
                f"{row['heatmap_kb'] or 0:>12d}{str(row['heatmap_px'] or '-'):>12s}")
    return figures


def _size(path: Path) -> str:
    from PIL import Image

    width, height = Image.open(path).size
    return f"{width}x{height}"


def main() -> None:
    from benchmarks.clinic import cli

    cli(__doc__.splitlines()[0], measure)


if __name__ == "__main__":
    main()
