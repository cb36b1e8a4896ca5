"""Edge runtime figures for one folder in one run: pipeline efficiency, int8 vs float32 TFLite vs Keras,
and peak memory of `classify` at 100 vs 1,000 images.

Run: .venv/bin/python benchmarks/edge.py [--preset alexnet] [--images 200] [--json out.json]

Speed does not depend on training, so the bundle is built from an untrained model of the preset (marked
not deployable; loaded with allow_unverified). Ratios are measured in the same run, on the same machine;
pipeline efficiency is the median over interleaved rounds of end-to-end vs invoke-only images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cxr_convert.bundle import write_bundle
from cxr_convert.tflite import convert
from cxr_edge.bundle.load import FORMAT_VERSION, load_bundle
from cxr_edge.inputs.images import prepare
from cxr_edge.labels import LABELS
from cxr_edge.models.interpreter import TFLiteModel, backend
from cxr_edge.run.bench import generated_images, per_image_ms
from cxr_edge.run.classify import BATCH, Classifier, decode, run_folder
from cxr_train.alexnet import PRESETS, build_model

# A child process that classifies a folder and reports its own peak memory: each count gets a fresh process.
_MEMORY_CHILD = """
import json, sys
from cxr_edge.run.bench import peak_memory_mb
from cxr_edge.bundle.load import load_bundle
from cxr_edge.run.classify import BATCH, Classifier, decode, run_folder
results, summary = run_folder(Classifier(load_bundle(sys.argv[1], allow_unverified=True)), sys.argv[2])
print(json.dumps({"images": summary.images, "peak_mb": peak_memory_mb()}))
"""


def make_bundle(preset: str, out: Path, calibration: np.ndarray, quantization: str):
    size = PRESETS[preset].image_size
    stage1, stage2 = build_model(preset, 2, name="stage1"), build_model(preset, 3, name="stage2")
    models = {"stage1.tflite": convert(stage1, quantization, calibration),
              "stage2.tflite": convert(stage2, quantization, calibration)}
    manifest = {"format_version": FORMAT_VERSION, "labels": list(LABELS), "quantization": quantization,
                "input": {"size": size, "channels": 1, "dtype": "uint8" if quantization == "int8" else "float32"},
                "stage1_threshold": 0.5, "min_confidence": 0.6, "deployable": False,
                "training_data": {"name": "untrained benchmark model", "synthetic": True}}
    write_bundle(out, models, manifest)
    return stage1, stage2, models


def keras_predictor(model, size: int):
    """The Keras model as one traced graph for a single image: Keras at its best, not eager overhead."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False),
                     input_signature=[tf.TensorSpec((1, size, size, 1), tf.uint8)])
    return lambda x: fn(x).numpy()


def efficiency_ceiling(invoke_cpu_s: float, paths: list[Path], size: int) -> dict:
    """The best pipeline efficiency the CPU work allows: when inference already keeps every core busy,
    decoding can only overlap it by taking cores from it, so end-to-end / invoke-only is at most
    inference CPU / (inference CPU + decode CPU) per image."""
    start = time.process_time()
    for path in paths:
        decode(path, size)  # all the decode thread does: read, decode, gray, resize, sanity checks
    decode_cpu_s = (time.process_time() - start) / len(paths)
    return {"invoke_cpu_ms_per_image": round(1000 * invoke_cpu_s, 3),
            "decode_cpu_ms_per_image": round(1000 * decode_cpu_s, 3),
            "pipeline_efficiency_ceiling": round(invoke_cpu_s / (invoke_cpu_s + decode_cpu_s), 3)}


def peak_memory_mb(bundle: Path, folder: Path) -> float:
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(bundle), str(folder)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def cold_start_s(command: list[str], repeats: int = 3) -> float:
    """Median wall time of a command, start to exit."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(preset: str = "alexnet", images: int = 200, rounds: int = 5,
            memory_counts: tuple[int, int] = (100, 1000)) -> dict:
    """Every edge figure for one preset's int8 bundle, measured in this one run."""
    size = PRESETS[preset].image_size
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
               "interpreter": f"{backend().name} {backend().version}", "preset": preset}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "images"
        big.mkdir()
        paths = generated_images(big, max(images, *memory_counts))
        inputs = [prepare(p, size)[np.newaxis] for p in paths[:images]]
        calibration = np.concatenate(inputs[:16])
        stage1, stage2, int8 = make_bundle(preset, tmp / "int8", calibration, "int8")
        float32 = {name: convert(m, "float32") for name, m in (("stage1.tflite", stage1), ("stage2.tflite", stage2))}

        classifier = Classifier(load_bundle(tmp / "int8", allow_unverified=True))
        folders = {}
        for name, n in (("speed", images), ("one", 1), *((f"mem{n}", n) for n in memory_counts)):
            folders[name] = tmp / name
            folders[name].mkdir()
            for p in paths[:n]:
                os.link(p, folders[name] / p.name)
        batch_inputs = np.concatenate(inputs)
        run_folder(classifier, folders["speed"])  # warm-up: page cache, interpreter buffers
        timings, invoke_cpu = [], []
        for _ in range(rounds):  # interleaved, so that machine noise hits both alike
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(batch_inputs), BATCH):  # inference alone, in the pipeline's batches
                classifier.predict_padded(batch_inputs[i:i + BATCH])
            invoke_only = len(inputs) / (time.perf_counter() - start)
            invoke_cpu.append((time.process_time() - cpu) / len(inputs))
            _, summary = run_folder(classifier, folders["speed"])
            timings.append((invoke_only, summary.images_per_s))
        figures["invoke_only_images_per_s"] = round(float(np.median([r[0] for r in timings])), 1)
        figures["end_to_end_images_per_s"] = round(float(np.median([r[1] for r in timings])), 1)
        figures["pipeline_efficiency"] = round(float(np.median([e / i for i, e in timings])), 3)
        figures["pipeline_efficiency_rounds"] = [round(e / i, 3) for i, e in timings]
        figures.update(efficiency_ceiling(float(np.median(invoke_cpu)), paths[:images], size))

        sample = inputs[:min(50, len(inputs))]  # per-image latency: batch 1 for all three
        t_int8 = [TFLiteModel(int8[n]) for n in ("stage1.tflite", "stage2.tflite")]
        t_f32 = [TFLiteModel(float32[n]) for n in ("stage1.tflite", "stage2.tflite")]
        figures["int8_ms_per_image"] = round(per_image_ms(lambda x: [m.predict(x) for m in t_int8], sample), 2)
        figures["float32_tflite_ms_per_image"] = round(per_image_ms(lambda x: [m.predict(x) for m in t_f32], sample), 2)
        keras_fns = [keras_predictor(m, size) for m in (stage1, stage2)]
        figures["keras_ms_per_image"] = round(per_image_ms(lambda x: [f(x) for f in keras_fns], sample), 2)
        figures["int8_speedup_vs_keras"] = round(figures["keras_ms_per_image"] / figures["int8_ms_per_image"], 2)
        figures["int8_speedup_vs_float32_tflite"] = round(
            figures["float32_tflite_ms_per_image"] / figures["int8_ms_per_image"], 2)

        cli = str(Path(sys.executable).parent / "cxr-edge")
        python_s = cold_start_s([sys.executable, "-c", "pass"])
        classify_s = cold_start_s([cli, "classify", str(folders["one"]), "--model", str(tmp / "int8"),
                                   "--allow-unverified", "--format", "csv"])
        figures["cold_start_classify_1_image_s"] = round(classify_s, 3)
        figures["cold_start_python_pass_s"] = round(python_s, 3)
        figures["cold_start_ratio"] = round(classify_s / python_s, 1)

        small_n, large_n = memory_counts
        mem = {n: peak_memory_mb(tmp / "int8", folders[f"mem{n}"]) for n in memory_counts}
        figures[f"peak_memory_mb_{small_n}"] = round(mem[small_n], 1)
        figures[f"peak_memory_mb_{large_n}"] = round(mem[large_n], 1)
        figures["peak_memory_ratio"] = round(mem[large_n] / mem[small_n], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="alexnet", choices=list(PRESETS))
    parser.add_argument("--images", type=int, default=200, help="images for the speed figures")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--memory-counts", type=int, nargs=2, default=(100, 1000))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.preset, args.images, args.rounds, tuple(args.memory_counts))
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:{width}s}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
