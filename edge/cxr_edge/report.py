"""Report forms for `classify`: a terminal table, CSV, JSON and JSON lines. Every form carries the notice
that this is not a diagnosis, and a warning when the bundle was trained on synthetic data, failed its parity
gate, when the box's self-test fell back to other kernels or found no self-test to run, or when the bundle's
origin (its publisher's signature) is not verified."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from . import DISCLAIMER
from .atomic import write_atomic
from .classify import COLUMNS, Classifier, Result, Summary, printable, rows_of
from .labels import LABELS

SYNTHETIC_WARNING = ("WARNING: this bundle was trained on synthetic data: its results mean nothing for real "
                     "patients.")
UNVERIFIED_WARNING = ("WARNING: this bundle failed its float-vs-quantized parity gate and was used with "
                      "--allow-unverified: results are unverified.")
REPORT_SUFFIXES = (".csv", ".json", ".jsonl")


def notices(classifier: Classifier) -> list[str]:
    lines = [DISCLAIMER]
    if classifier.bundle.synthetic:
        lines.append(SYNTHETIC_WARNING)
    if not classifier.bundle.deployable:
        lines.append(UNVERIFIED_WARNING)
    if warning := classifier.selftest.warning():
        lines.append(warning)
    if classifier.bundle.origin and (warning := classifier.bundle.origin.warning()):
        lines.append(warning)
    return lines


def summary_dict(summary: Summary) -> dict:
    return {"images": summary.images, "counts": summary.counts, "referred": summary.referred,
            "errors": summary.errors, "skipped": summary.skipped, "seconds": round(summary.seconds, 3),
            "images_per_s": round(summary.images_per_s, 2)}


def summary_text(summary: Summary) -> str:
    counts = ", ".join(f"{label} {n}" for label, n in summary.counts.items())
    skipped = ""
    if summary.skipped:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary.skipped.items())
        skipped = f"; skipped {sum(summary.skipped.values())} file(s) that are not images ({kinds})"
    return (f"{summary.images} images: {counts}; referred to a clinician {summary.referred}; "
            f"errors {summary.errors}{skipped}; {summary.images_per_s:.1f} images/s")


def to_csv(results: list[Result], classifier: Classifier) -> str:
    out = io.StringIO()
    for line in notices(classifier):
        out.write(f"# {line}\n")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows_of(results):
        row = r.as_row()
        writer.writerow({k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()})
    return out.getvalue()


def to_json(results: list[Result], summary: Summary, classifier: Classifier) -> str:
    data = {"notice": DISCLAIMER, "warnings": notices(classifier)[1:], "bundle": _bundle_info(classifier),
            "summary": summary_dict(summary), "results": [r.as_row() for r in rows_of(results)]}
    return json.dumps(data, indent=2) + "\n"


def to_jsonl(results: list[Result], classifier: Classifier) -> str:
    head = json.dumps({"notice": DISCLAIMER, "warnings": notices(classifier)[1:], "bundle": _bundle_info(classifier)})
    return "\n".join([head, *(json.dumps(r.as_row()) for r in rows_of(results))]) + "\n"


def to_table(results: list[Result], summary: Summary, classifier: Classifier) -> str:
    headers = ["path", "label", *(f"p_{lb}" for lb in LABELS), "refer", "reason / error"]
    rows = []
    for r in rows_of(results):
        probs = [f"{p:.3f}" for p in r.probs] if r.probs else ["-"] * len(LABELS)
        rows.append([printable(r.path), r.label or "ERROR", *probs, "yes" if r.refer else "", r.error or r.reason])
    widths = [min(48, max(len(h), *(len(row[i]) for row in rows))) if rows else len(h) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])  # the last column runs free
    line = lambda cells: "  ".join(str(c)[:w].ljust(w) if i < len(cells) - 1 else str(c)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows), "", summary_text(summary)]
    return "\n".join(out + notices(classifier)) + "\n"


def _bundle_info(classifier: Classifier) -> dict:
    bundle = classifier.bundle
    return {"path": str(bundle.path), "quantization": bundle.manifest.get("quantization"),
            "threshold": bundle.threshold, "synthetic": bundle.synthetic, "deployable": bundle.deployable,
            "selftest": classifier.selftest.as_dict(),
            "origin": bundle.origin.as_dict() if bundle.origin else None}


def render(fmt: str, results: list[Result], summary: Summary, classifier: Classifier) -> str:
    if fmt == "table":
        return to_table(results, summary, classifier)
    if fmt == "csv":
        return to_csv(results, classifier)
    if fmt == "jsonl":
        return to_jsonl(results, classifier)
    return to_json(results, summary, classifier)


def report_format(path: os.PathLike | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ValueError(f"--output {str(path)!r}: the suffix picks the format; use .csv, .json or .jsonl")
    return suffix[1:]


def write_report(path: os.PathLike | str, results: list[Result], summary: Summary, classifier: Classifier) -> None:
    """Write the report file atomically, in the format its suffix names."""
    write_atomic(path, render(report_format(path), results, summary, classifier))
