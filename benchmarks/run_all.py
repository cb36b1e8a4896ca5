"""`make bench`: the project's figures in one table, each a ratio measured in one run or a size, with the
machine and date. Takes about 15 minutes on a 2-core machine.

Run from the repository root: .venv/bin/python -m benchmarks.run_all [--json bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from cxr_train.logs import quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="Also show TensorFlow's own log lines.")
    args = parser.parse_args()
    quiet(args.verbose)  # before the benchmarks' imports start TensorFlow
    from benchmarks import clinic, edge, model_sizes, node, training, web, worklist

    start = time.perf_counter()
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "date": time.strftime("%Y-%m-%d")}
    rows = []
    e = edge.measure("alexnet")
    figures["edge_alexnet_int8"] = e
    rows += [("edge pipeline efficiency (end-to-end / invoke-only images/s), alexnet int8",
              f"{e['pipeline_efficiency']} ({e['end_to_end_images_per_s']} / {e['invoke_only_images_per_s']})"),
             ("its ceiling: inference CPU / (inference + decode CPU), ms per image",
              f"{e['pipeline_efficiency_ceiling']} ({e['invoke_cpu_ms_per_image']} / "
              f"({e['invoke_cpu_ms_per_image']} + {e['decode_cpu_ms_per_image']}))"),
             ("int8 vs float32 TFLite vs Keras, ms per image (both stages)",
              f"{e['int8_ms_per_image']} / {e['float32_tflite_ms_per_image']} / {e['keras_ms_per_image']}"),
             ("int8 speed-up vs Keras / vs float32 TFLite",
              f"{e['int8_speedup_vs_keras']}x / {e['int8_speedup_vs_float32_tflite']}x"),
             ("cold start, classify 1 image vs python -c pass (s)",
              f"{e['cold_start_classify_1_image_s']} vs {e['cold_start_python_pass_s']} ({e['cold_start_ratio']}x)"),
             ("peak memory of classify, 100 vs 1,000 images (MB)",
              f"{e['peak_memory_mb_100']} vs {e['peak_memory_mb_1000']} (ratio {e['peak_memory_ratio']})")]
    c = clinic.measure(log=lambda line: None)
    figures["clinic"] = c
    rows += [(f"full-size {fmt} ({c['size']} px): end-to-end / inference images/s, decode CPU, peak MB",
              f"{r['ratio']} ({r['end_to_end_images_per_s']} / {r['inference_images_per_s']}), "
              f"{r['decode_cpu_ms']} ms, {r['peak_memory_mb']} MB") for fmt, r in c["formats"].items()]
    w = worklist.measure(log=lambda line: None)
    figures["worklist"] = w
    rows += [(f"classify {name}, {w['images']} full-size DICOM: images/s, peak MB, report / heatmap kB",
              f"{r['images_per_s']}, {r['peak_memory_mb']} MB, {r['report_kb']} / {r['heatmap_kb'] or '-'} kB")
             for name, r in w["runs"].items()]
    n = node.measure(log=lambda line: None)
    figures["node"] = n
    rows += [(f"clinic node receiving {name}, {n['images']} DX of {n['size']} px: node / storescp images/s",
              f"{r['ratio']} ({r['node_images_per_s']} / {r['storescp_images_per_s']}; target {node.TARGET_RATIO})")
             for name, r in n["throughput"].items()]
    rows += [("clinic node at 1 image/s: C-STORE response to result, p50 / p95 (s)",
              f"{n['latency']['p50_s']} / {n['latency']['p95_s']} (target p95 <= {node.TARGET_P95_S})"),
             (f"clinic node memory over {n['memory']['images']} images: peak MB, growth first to last 100",
              f"{n['memory']['peak_mb']} MB (target <= {node.TARGET_PEAK_MB}), {n['memory']['growth_mb']:+} MB")]
    b = web.measure(log=lambda line: None)
    figures["web"] = b
    rows += [(f"web screen, {b['studies']} studies: first worklist page p50 / p95 ms, memory paging through twice",
              f"{b['first_page_ms_p50']} / {b['first_page_ms_p95']} ms (target <= {web.TARGET_FIRST_PAGE_MS}), "
              f"{b['rss_mb_before_paging']} -> {b['rss_mb_after_paging_twice']} MB"),
             (f"viewer, {b['viewer_images']} radiographs of {b['viewer_image_pixels']}: full resolution cold / cached "
              "p50 ms, memory after all", f"{b['viewer_cold_ms_p50']} / {b['viewer_cached_ms_p50']} ms, "
              f"{b['rss_mb_before_viewer']} -> {b['rss_mb_after_viewer']} MB; viewer files "
              f"{sum(b['vendored_viewer_kb'].values())} kB")]
    sizes = model_sizes.measure(("alexnet", "alexnet-edge"))
    figures["sizes"] = sizes
    rows += [(f"{r['preset']} float32 / int8 size (MB)", f"{r['float32_mb']} / {r['int8_mb']} ({r['ratio']}x)")
             for r in sizes]
    throughput = [training.training_throughput(p) for p in ("alexnet", "alexnet-edge", "tiny")]
    figures["training"] = throughput
    rows += [(f"training {t['preset']}: images/s (input pipeline alone)",
              f"{t['train_images_per_s']} ({t['input_images_per_s']}; waits on input: {t['waits_on_input']})")
             for t in throughput]
    p = training.parity()
    figures["parity"] = p
    rows.append(("float vs int8 on synthetic (tiny, 100/class): agreement, accuracy delta, macro-F1 delta",
                 f"{p['agreement']}, {p['accuracy_delta']:+}, {p['macro_f1_delta']:+} ({p['parity_images']} images; "
                 f"gate {p['verdict']})"))
    figures["seconds"] = round(time.perf_counter() - start, 1)
    width = max(len(r[0]) for r in rows)
    print(f"\ncxr-edge benchmarks: {figures['machine']}, {figures['date']}, interpreter {e['interpreter']}")
    print(f"{'figure':{width}s}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:{width}s}  {value}")
    print(f"(took {figures['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
