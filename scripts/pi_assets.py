"""Material for `make pi-check`, made on the host: a bundle, test images, Pi-like /proc/cpuinfo, and the
comparisons of the Pi's reports and DICOM results with the host's.

    python scripts/pi_assets.py bundle OUT          # an int8 alexnet-edge bundle (untrained, seeded)
    python scripts/pi_assets.py bundle-mixed OUT    # the same with layers in float16 and int16 (--search's kinds)
    python scripts/pi_assets.py images OUT          # 8 radiographs, 8 DICOM (6 syntaxes, large, marked), a corrupt one
    python scripts/pi_assets.py cpuinfo cortex-a72  # a Raspberry Pi 4 (a72) or Pi 5 (a76) cpuinfo
    python scripts/pi_assets.py compare HOST.json PI.json LABEL [pinned|selftest]
    python scripts/pi_assets.py compare-sr HOST_DIR PI_DIR LABEL [exact|pinned|selftest]  # `classify --sr` folders
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PROBABILITY_STEPS = 2  # the same interpreter version: measured 0-1 step of 1/256 between aarch64 and x86_64
OOD_RELATIVE = 0.01  # ood_score is a distance over the features, which move with them
# (CPU part, features) as a Raspberry Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76) report them. "max" is qemu's
# everything-on CPU (SVE, SME, i8mm), like no Pi: it gets the Pi 5's text (what the code uses comes from the
# emulated CPU itself), and pi-check runs it to show the self-test catching LiteRT's wrong outputs there.
CPUS = {
    "cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid"),
    "cortex-a76": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                            "lrcpc dcpop asimddp"),
}
CPUS["max"] = CPUS["cortex-a76"]
# What two writings of the same result legitimately differ in: when they were written. Two host runs a minute apart
# differ in exactly these (the times; the dates too when midnight falls between, as it may between the host's run
# and the Pi's). Nothing else: the UIDs are derived from the source and the bundle (cxr_edge.record.uids).
WRITTEN_AT = ("InstanceCreationDate", "InstanceCreationTime",  # SOP Common, both objects
              "ContentDate", "ContentTime",  # SR Document General; General Image of the capture
              "DateOfSecondaryCapture", "TimeOfSecondaryCapture",  # SC Image
              "ContributionDateTime")  # highdicom's Contributing Equipment item (the library that wrote it)
PIXELS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def make_bundle(out: Path, mixed: bool = False) -> None:
    """An untrained alexnet-edge bundle, int8; or, `mixed`, int8 but for layers of both kinds the quantization
    search keeps out of int8 (cxr_convert.precision): the first convolution (and the input's scaling) in float with
    float16 weights, the last two dense layers with int16 activations."""
    import keras
    import numpy as np

    from cxr_convert.bundle import write_bundle
    from cxr_convert.tflite import convert
    from cxr_edge import __version__
    from cxr_edge.bundle.load import FORMAT_VERSION
    from cxr_edge.inputs.images import IMAGE_CONTRACT_VERSION, RESIZE_FILTER, to_model_input
    from cxr_edge.labels import LABELS
    from cxr_edge.models.interpreter import TFLiteModel
    from cxr_train.alexnet import build_model
    from cxr_train.synth import image_rng, make_image

    keras.utils.set_random_seed(0)
    calibration = np.stack([to_model_input(make_image(lb, 299, image_rng(5, lb, i)).pixels, 227)
                            for i in range(4) for lb in LABELS])
    stages = {f"stage{n}": build_model("alexnet-edge", k, name=f"stage{n}") for n, k in ((1, 2), (2, 3))}
    if mixed:
        models = {f"{s}.tflite": _mixed(convert(m, "float32"), calibration) for s, m in stages.items()}
    else:
        models = {f"{s}.tflite": convert(m, "int8", calibration) for s, m in stages.items()}
    dtype = TFLiteModel(models["stage1.tflite"]).input.dtype.name
    write_bundle(out, models, {"format_version": FORMAT_VERSION, "cxr_edge_version": __version__,
                               "image_contract": {"version": IMAGE_CONTRACT_VERSION, "resize_filter": RESIZE_FILTER},
                               "labels": list(LABELS), "quantization": "int8+float16+int16" if mixed else "int8",
                               "input": {"size": 227, "channels": 1, "dtype": dtype}, "stage1_threshold": 0.5,
                               "min_confidence": 0.6, "deployable": False,
                               "training_data": {"name": "untrained pi-check model", "synthetic": True}})


def _mixed(float32: bytes, calibration) -> bytes:
    from cxr_convert import precision

    ops = precision.graph(float32)
    first_conv = next(op.name for op in ops if op.kind == "CONV_2D")
    last_dense = [op.name for op in ops if op.kind == "FULLY_CONNECTED"][-1]
    layers = {name: "float16" for name in precision.with_inputs(ops, first_conv)}
    layers.update({name: "int16" for name in precision.with_inputs(ops, last_dense)})
    return precision.quantize(float32, calibration, precision.Recipe(layers=layers))


def make_images(out: Path) -> None:
    """8 synthetic radiographs as PNG, one as DICOM in each compressed syntax units write (decoded in the root by
    the base install's GDCM), a large JPEG 2000 one (decoded at a reduced resolution by Pillow), a windowless one
    with a burned-in marker (percentile range), and a corrupt file."""
    import numpy as np
    from PIL import Image

    from cxr_edge.labels import LABELS
    from cxr_train.synth import image_rng, make_image
    from cxr_train.synth_dicom import SYNTAXES, write_dicom

    out.mkdir(parents=True)
    for i in range(2):
        for label in LABELS:
            Image.fromarray(make_image(label, 299, image_rng(77, label, i)).pixels).save(out / f"{label}-{i}.png")
    stored = np.rint(make_image("lung_opacity", 299, image_rng(78, "lung_opacity", 0)).pixels / 255 * 4095)
    for name in ("explicit", "jpeg-lossless-sv1", "jpeg-extended-12", "jpeg-ls", "j2k-lossless", "rle"):
        write_dicom(out / f"dicom-{name}", stored, syntax=SYNTAXES[name], ViewPosition="PA")
    # a 1196-px JPEG 2000: large enough that the box decodes it at a reduced resolution (Pillow's OpenJPEG)
    large = np.asarray(Image.fromarray(stored.astype(np.float32), "F").resize((1196, 1196)))
    write_dicom(out / "dicom-j2k-large", np.rint(large), syntax=SYNTAXES["j2k-lossless"], ViewPosition="PA")
    # no window, and a marker at 4095 beside anatomy in 0..1000: scaled from its percentile range (contract 4)
    marked = np.rint(stored / 4095 * 1000)
    marked[10:40, 10:40] = 4095
    write_dicom(out / "dicom-marker-no-window", marked, ViewPosition="PA")
    (out / "corrupt.png").write_bytes((out / "normal-0.png").read_bytes()[:500])


def cpuinfo(cpu: str) -> str:
    part, features = CPUS[cpu]
    block = (f"BogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 3\n")
    return "".join(f"processor\t: {i}\n{block}\n" for i in range(4)) + "Model\t\t: Raspberry Pi\n"


def compare(host_path: Path, pi_path: Path, label: str, mode: str = "pinned") -> bool:
    """Compare the Pi's report with the host's. "pinned" (the verified interpreter): same rows, labels, refer
    flags, errors and reasons, probabilities within PROBABILITY_STEPS steps of 1/256 (XNNPACK's int8 kernels
    differ by a step now and then between aarch64 and x86_64), ood_score within 1%; and it says whether the
    report is the host's bit for bit. "selftest" (a machine known to compute wrongly, where the self-test may
    have fallen back to other kernels): same rows, refer flags and errors, and the same label wherever the
    host's top two probabilities are further apart than the self-test's tolerance lets a legitimate
    difference swap them."""
    host_report, pi_report = (json.loads(Path(p).read_text()) for p in (host_path, pi_path))
    host, pi = host_report["results"], pi_report["results"]
    problems, max_diff, max_ood = [], 0.0, 0.0
    if [r["path"] for r in host] != [r["path"] for r in pi]:
        problems.append("different rows")
    for h, p in zip(host, pi):
        keys = ("label", "refer", "error") if mode == "pinned" or _clear(h) else ("refer", "error")
        for key in keys:
            if h[key] != p[key]:
                problems.append(f"{h['path']}: {key} {h[key]!r} on the host, {p[key]!r} on the Pi")
        if mode == "pinned" and _masked(h["reason"]) != _masked(p["reason"]):
            problems.append(f"{h['path']}: reason {h['reason']!r} on the host, {p['reason']!r} on the Pi")
        for key, value in h.items():
            if key.startswith("p_") and value is not None:
                max_diff = max(max_diff, abs(value - p[key]))
        if h.get("ood_score") is not None and p.get("ood_score") is not None:
            max_ood = max(max_ood, abs(h["ood_score"] - p["ood_score"]) / max(abs(h["ood_score"]), 1e-9))
    if mode == "pinned" and (max_diff > PROBABILITY_STEPS / 256 + 1e-6 or max_ood > OOD_RELATIVE):
        problems.append(f"probabilities differ by up to {max_diff:.2e} (limit {PROBABILITY_STEPS}/256), "
                        f"ood_score by {max_ood:.1%} (limit {OOD_RELATIVE:.0%})")
    origin = pi_report.get("bundle", {}).get("origin") or {}
    if not origin.get("verified"):
        problems.append(f"the bundle's signature was not verified here: {origin.get('problem')}")
    print(f"  signature: {'verified, signer ' + repr(origin.get('signer')) if origin.get('verified') else 'NOT verified'}")
    selftest = pi_report.get("bundle", {}).get("selftest", {})
    tried = "; then ".join(f"{'XNNPACK' if t['xnnpack'] else t['kernels'] + ' kernels'} "
                           f"{'passed' if t['passed'] else 'FAILED'} ({t['max_steps']:g} steps)"
                           for t in selftest.get("tried", []))
    print(f"  self-test: {selftest.get('status', 'none')}{': ' + tried if tried else ''}")
    verdict = "PASS" if not problems else "FAIL"
    judged = "labels, refer flags, errors" if mode == "pinned" else "refer flags, errors, clear labels"
    bitwise = "; bit for bit" if max_diff == 0 and max_ood == 0 else ""
    print(f"{verdict} {label}: {len(host)} rows, {judged} {'as on the host' if not problems else 'differ'}"
          f"{bitwise}; max |probability difference| {max_diff:.2e} ({max_diff * 256:.1f} steps), "
          f"max ood_score difference {max_ood:.2%}")
    for problem in problems:
        print(f"  {problem}")
    return not problems


def compare_sr(host_dir: Path, pi_dir: Path, label: str, mode: str = "exact") -> bool:
    """Compare the Pi's `cxr-edge classify --sr` folder (SRs and heatmap secondary captures) with the host's, file by
    file and data element by data element (file meta and nested sequences included), all but WRITTEN_AT. "exact"
    (the run's report was the host's bit for bit): every value equal, pixel data included. "pinned": probabilities
    (NumericValue, FloatingPointValue) within PROBABILITY_STEPS steps of 1/256, texts equal but for their numbers,
    the pixel data's difference reported, not judged (an occluded input a step off moves the heatmap's colours).
    "selftest": as pinned, but probabilities not bounded and values naming a label free to differ where the host's
    top two probabilities are not clear, as `compare` judges the report."""
    import numpy as np
    import pydicom

    host_dir, pi_dir = Path(host_dir), Path(pi_dir)
    names = sorted(p.name for p in host_dir.glob("*.dcm"))
    pi_names = sorted(p.name for p in pi_dir.glob("*.dcm")) if pi_dir.is_dir() else []
    problems = [] if names else [f"no DICOM files in {host_dir}"]
    if names != pi_names:
        problems.append(f"files {names} on the host, {pi_names} on the Pi")
    compared = max_pixel = differing = 0
    for name in sorted(set(names) & set(pi_names)):
        host_ds, pi_ds = pydicom.dcmread(host_dir / name), pydicom.dcmread(pi_dir / name)
        host, pi = _elements(host_ds), _elements(pi_ds)
        compared += len(host)
        probs = [float(v) for k, v in host.items() if k.endswith(".NumericValue")]
        clear = mode != "selftest" or _clear_probs(probs)
        for key in sorted(host.keys() | pi.keys(), key=lambda k: (k not in host, k)):
            if key not in pi or key not in host:
                problems.append(f"{name}: {key} only on the {'host' if key in host else 'Pi'}")
            elif not _same_value(key, host[key], pi[key], mode, clear):
                problems.append(f"{name}: {key} {host[key]!r} on the host, {pi[key]!r} on the Pi")
        if any(k in host_ds for k in PIXELS):
            a, b = host_ds.pixel_array.astype(np.int64), pi_ds.pixel_array.astype(np.int64)
            if a.shape != b.shape:
                problems.append(f"{name}: pixel data {a.shape} on the host, {b.shape} on the Pi")
                continue
            count = int((a != b).sum())
            differing, max_pixel = differing + count, max(max_pixel, int(np.abs(a - b).max()))
            if mode == "exact" and count:
                problems.append(f"{name}: pixel data differs from the host's ({count} of {a.size} values)")
    verdict = "PASS" if not problems else "FAIL"
    pixels = "bit for bit" if not differing else f"{differing} values differ, by up to {max_pixel}"
    print(f"{verdict} {label}: SR and heatmap capture, {len(names)} files, {compared} data elements "
          f"{'as on the host' if not problems else 'differ'} ({mode}; the times they were written aside); "
          f"pixel data {pixels}")
    for problem in problems[:20]:
        print(f"  {problem}")
    if len(problems) > 20:
        print(f"  and {len(problems) - 20} more")
    return not problems


def _elements(ds, prefix: str = "") -> dict:
    """Every data element of `ds` (and its file meta) by path ("ContentSequence[2].NumericValue"): WRITTEN_AT and
    pixel data left out."""
    found = {}
    for element in list(getattr(ds, "file_meta", None) or []) + list(ds):
        key = prefix + (element.keyword or str(element.tag))
        if element.keyword in WRITTEN_AT or element.keyword in PIXELS:
            continue
        if element.VR == "SQ":
            for i, item in enumerate(element.value):
                found.update(_elements(item, f"{key}[{i}]."))
        else:
            found[key] = element.value
    return found


def _same_value(key: str, host, pi, mode: str, clear: bool) -> bool:
    if host == pi:
        return True
    if mode == "exact":
        return False
    if key.rsplit(".", 1)[-1] in ("NumericValue", "FloatingPointValue"):  # a measurement's value, as DS and as FD
        return mode == "selftest" or abs(float(host) - float(pi)) <= PROBABILITY_STEPS / 256 + 1e-6
    if _masked(str(host)) == _masked(str(pi)):
        return True
    return not clear and _names_label(str(host)) and _names_label(str(pi))


def _names_label(text: str) -> bool:
    from cxr_edge.labels import LABELS, in_words
    from cxr_edge.record.codes import LABEL_CODES

    words = [w for lb in LABELS for w in (lb, in_words(lb), LABEL_CODES[lb].value, LABEL_CODES[lb].meaning)]
    return any(word in text for word in words)


def _clear(row: dict) -> bool:
    """Whether the host's top two probabilities are further apart than twice the self-test's tolerance."""
    return _clear_probs([v for k, v in row.items() if k.startswith("p_") and v is not None])


def _clear_probs(probs: list[float]) -> bool:
    probs = sorted(probs, reverse=True)
    from cxr_edge.bundle.selftest import TOLERANCE_STEPS  # run-on-pi.sh calls this with the kit's venv, which has it

    return len(probs) < 2 or probs[0] - probs[1] > 2 * TOLERANCE_STEPS / 256


def _masked(reason: str) -> str:
    return re.sub(r"\d+\.\d+", "#", reason)


def main() -> None:
    command, *args = sys.argv[1:]
    if command in ("bundle", "bundle-mixed"):
        make_bundle(Path(args[0]), mixed=command == "bundle-mixed")
    elif command == "images":
        make_images(Path(args[0]))
    elif command == "cpuinfo":
        print(cpuinfo(args[0]), end="")
    elif command == "compare":
        sys.exit(0 if compare(Path(args[0]), Path(args[1]), *args[2:]) else 1)
    elif command == "compare-sr":
        sys.exit(0 if compare_sr(Path(args[0]), Path(args[1]), *args[2:]) else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
