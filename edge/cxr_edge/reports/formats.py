"""Report forms for `classify`: a terminal table (table.py), CSV, JSON, JSON lines and the HTML worklist
(html_report.py). Every form carries the notice
that this is not a diagnosis, and a warning when the bundle was trained on synthetic data, failed its parity
gate, when the box's self-test fell back to other kernels or found no self-test to run, or when the bundle's
origin (its publisher's signature) is not verified."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

from cxr_edge import DISCLAIMER
from cxr_edge.atomic import write_atomic
from cxr_edge.csv_cells import safe
from cxr_edge.run.classify import COLUMNS, Classifier, Result, Summary, rows_of

SYNTHETIC_WARNING = ("WARNING: this bundle was trained on synthetic data: its results mean nothing for real "
                     "patients.")
UNVERIFIED_WARNING = ("WARNING: this bundle did not pass its float-vs-quantized parity gate and was used with "
                      "--allow-unverified: results are unverified.")
REPORT_SUFFIXES = (".csv", ".json", ".jsonl", ".html")


def notices(classifier: Classifier, results: list[Result] | None = None) -> list[str]:
    """The notice, the operating point in use, then every warning: the lines the table, CSV and HTML carry."""
    from cxr_edge.site.site_file import operating_point_line

    return [DISCLAIMER, operating_point_line(classifier), *run_warnings(classifier, results)]


def run_warnings(classifier: Classifier, results: list[Result] | None = None) -> list[str]:
    """Every warning that applies to this run, the same in every report form; with `results`, also the
    monitoring warnings (cxr_edge.site.site_file.monitor)."""
    from cxr_edge.site.site_file import monitor, uncalibrated_warning

    lines = []
    if classifier.bundle.synthetic:
        lines.append(SYNTHETIC_WARNING)
    if not classifier.bundle.deployable:
        lines.append(UNVERIFIED_WARNING)
    if warning := classifier.selftest.warning():
        lines.append(warning)
    if classifier.bundle.origin and (warning := classifier.bundle.origin.warning()):
        lines.append(warning)
    if warning := uncalibrated_warning(classifier):
        lines.append(warning)
    if results is not None:
        lines += monitor(rows_of(results), classifier)
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
        skipped = f"; skipped {sum(summary.skipped.values())} file(s) not classified ({kinds})"
    return (f"{summary.images} images: {counts}; referred to a clinician {summary.referred}; "
            f"errors {summary.errors}{skipped}; {summary.images_per_s:.1f} images/s")


def to_csv(results: list[Result], classifier: Classifier) -> str:
    out = io.StringIO()
    for line in notices(classifier, results):
        out.write(f"# {line}\n")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows_of(results):
        row = r.as_row()
        writer.writerow({k: ("" if v is None else str(v).lower() if isinstance(v, bool) else safe(v))
                         for k, v in row.items()})
    return out.getvalue()


def to_json(results: list[Result], summary: Summary, classifier: Classifier) -> str:
    data = {"notice": DISCLAIMER, "warnings": run_warnings(classifier, results), "bundle": _bundle_info(classifier),
            "summary": summary_dict(summary), "results": [r.as_row() for r in rows_of(results)]}
    return json.dumps(data, indent=2) + "\n"


def to_jsonl(results: list[Result], classifier: Classifier) -> str:
    head = json.dumps({"notice": DISCLAIMER, "warnings": run_warnings(classifier, results),
                       "bundle": _bundle_info(classifier)})
    return "\n".join([head, *(json.dumps(r.as_row()) for r in rows_of(results))]) + "\n"


def to_table(results: list[Result], summary: Summary, classifier: Classifier) -> str:
    from cxr_edge.reports.table import to_table as table

    return table(results, summary_text(summary), notices(classifier, results))


def _bundle_info(classifier: Classifier) -> dict:
    from cxr_edge.site.site_file import operating_point

    bundle = classifier.bundle
    return {"path": str(bundle.path), "quantization": bundle.manifest.get("quantization"),
            "threshold": bundle.threshold, "synthetic": bundle.synthetic, "deployable": bundle.deployable,
            "selftest": classifier.selftest.as_dict(),
            "origin": bundle.origin.as_dict() if bundle.origin else None,
            "operating_point": operating_point(classifier)}


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
        raise ValueError(f"--output {str(path)!r}: the suffix picks the format; use .csv, .json, .jsonl or .html")
    return suffix[1:]


def write_report(path: os.PathLike | str, results: list[Result], summary: Summary, classifier: Classifier,
                 folder: os.PathLike | str = "", visuals=None, started: float | None = None) -> None:
    """Write the report file atomically, in the format its suffix names (the HTML worklist for .html)."""
    if report_format(path) == "html":
        from cxr_edge.reports.worklist import write_html

        write_html(path, results, summary, classifier, folder, visuals, started or time.time(),
                   run_warnings(classifier, results))
        return
    write_atomic(path, render(report_format(path), results, summary, classifier))
