"""Report forms for `classify`: a terminal table (table.py), CSV, JSON, JSON lines and the HTML worklist
(html_report.py). Every form carries the notice
that this is not a diagnosis, and a warning when the bundle was trained on synthetic data, failed its parity
gate, when the box's self-test fell back to other kernels or found no self-test to run, or when the bundle's
origin (its publisher's signature) is not verified."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cxr_edge import notice
from cxr_edge.atomic import write_atomic
from cxr_edge.csv_cells import csv_text
from cxr_edge.labels import in_words
from cxr_edge.language import N_, _, ngettext
from cxr_edge.run.classify import Classifier, Summary, rows_of
from cxr_edge.run.result import COLUMNS, Result

SYNTHETIC_WARNING = ("WARNING: this bundle was trained on synthetic data: its results mean nothing for real "
                     "patients.")
UNVERIFIED_WARNING = ("WARNING: this bundle did not pass its float-vs-quantized parity gate and was used with "
                      "--allow-unverified: results are unverified.")
REPORT_SUFFIXES = (".csv", ".json", ".jsonl", ".html")


def notices(classifier: Classifier, results: list[Result] | None = None) -> list[str]:
    """The notice, the operating point in use, then every warning: the lines the table, CSV and HTML carry."""
    from cxr_edge.site.site_file import operating_point_line

    return [notice(), operating_point_line(classifier), *run_warnings(classifier, results)]


@dataclass(frozen=True)
class RunWarning:
    """A warning as the file forms carry it (`text`: what and why, for whoever looks into it, in English) and as the
    worklist's header and the screen put it to a clinician (`plain`: what it means for the results, in plain
    words: a message of the catalogue, translated where it is shown by `words`)."""

    text: str
    plain: str

    def words(self) -> str:
        return _(self.plain)


def run_warnings(classifier: Classifier, results: list[Result] | None = None) -> list[str]:
    """Every warning that applies to this run, the same in every report form; with `results`, also the
    monitoring warnings (cxr_edge.site.site_file.monitor)."""
    return [w.text for w in warnings_of(classifier, results)]


def warnings_of(classifier: Classifier, results: list[Result] | None = None) -> list[RunWarning]:
    """run_warnings with the plain words the worklist's header shows for each."""
    from cxr_edge.site.site_file import monitor, monitor_plain, uncalibrated_warning

    found = []
    if classifier.bundle.synthetic:
        found.append(RunWarning(SYNTHETIC_WARNING, N_("This model learned from made-up (synthetic) images: its "
                                                      "results mean nothing for real patients. Do not use them.")))
    if not classifier.bundle.deployable:
        found.append(RunWarning(UNVERIFIED_WARNING, N_("This model was not shown to give the results of the model "
                                                       "that was validated, and was run anyway: treat every result "
                                                       "as unverified.")))
    if warning := classifier.selftest.warning():
        plain = (N_("Nothing checked that this box computes this model correctly: ask the technician for an "
                    "up-to-date model file.") if classifier.selftest.status == "absent" else
                 N_("The box's fastest arithmetic failed its check, so a slower one that passed it was used "
                    "instead. Tell the technician."))
        found.append(RunWarning(warning, plain))
    from cxr_edge.bundle.signature import trust_folder_warning

    if warning := trust_folder_warning():
        found.append(RunWarning(warning, N_("The box's list of trusted model publishers can be changed by other "
                                            "users of this computer: ask the technician to fix it before relying "
                                            "on results.")))
    if classifier.bundle.origin and (warning := classifier.bundle.origin.warning()):
        found.append(RunWarning(warning, N_("Where this model came from is not verified (no trusted signature): "
                                            "ask the technician before relying on its results.")))
    if warning := uncalibrated_warning(classifier):
        found.append(RunWarning(warning, N_("Not yet set for this clinic's patients: the normal/abnormal threshold "
                                            "is the one chosen on the training images, so the share flagged "
                                            "abnormal may not match this clinic's.")))
    if results is not None:
        rows = rows_of(results)
        found += [RunWarning(line, plain) for line, plain in zip(monitor(rows, classifier),
                                                                  monitor_plain(rows, classifier))]
    return found


def summary_dict(summary: Summary) -> dict:
    return {"images": summary.images, "counts": summary.counts, "referred": summary.referred,
            "errors": summary.errors, "skipped": summary.skipped, "seconds": round(summary.seconds, 3),
            "images_per_s": round(summary.images_per_s, 2)}


def summary_text(summary: Summary) -> str:
    """The run in a line, in the current language (under the terminal table, and on stderr)."""
    counts = ", ".join(f"{in_words(label)} {n}" for label, n in summary.counts.items())
    skipped = ""
    if summary.skipped:
        kinds = ", ".join(f"{_(kind)} {n}" for kind, n in summary.skipped.items())
        skipped = "; " + ngettext("skipped %(num)s file not classified (%(kinds)s)",
                                  "skipped %(num)s files not classified (%(kinds)s)",
                                  sum(summary.skipped.values())) % {"num": sum(summary.skipped.values()),
                                                                    "kinds": kinds}
    return _("%(images)s images: %(counts)s; referred to a clinician %(referred)s; errors %(errors)s%(skipped)s; "
             "%(speed)s images/s") % {"images": summary.images, "counts": counts, "referred": summary.referred,
                                      "errors": summary.errors, "skipped": skipped,
                                      "speed": f"{summary.images_per_s:.1f}"}


def to_csv(results: list[Result], classifier: Classifier) -> str:
    out = io.StringIO()
    for line in notices(classifier, results):
        out.write(f"# {line}\n")
    out.write(csv_text(COLUMNS, [r.as_row() for r in rows_of(results)]))
    return out.getvalue()


def to_json(results: list[Result], summary: Summary, classifier: Classifier) -> str:
    data = {"notice": notice(), "warnings": run_warnings(classifier, results), "bundle": _bundle_info(classifier),
            "summary": summary_dict(summary), "results": [r.as_row() for r in rows_of(results)]}
    return json.dumps(data, indent=2) + "\n"


def to_jsonl(results: list[Result], classifier: Classifier) -> str:
    head = json.dumps({"notice": notice(), "warnings": run_warnings(classifier, results),
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


class ReportNotWritten(OSError):
    """The folder was classified (its journal keeps every result), but a report file could not be written."""


def classify_into_report(classifier: Classifier, folder: os.PathLike | str, report: os.PathLike | str, *,
                         csv_beside: bool = False, keep_journal: bool = False, visuals=None, **options):
    """The one runner of a folder into a report, for `classify --output` and the node's sticks: classify `folder`
    resuming from the report's journal (cxr_edge.run.journal.run_with_journal, which takes `options`), write the
    report (and, with `csv_beside`, the CSV beside it), then remove the journal and the report's pictures, or with
    `keep_journal` close it and keep both (the node: the same stick again today takes every result from them).
    Returns (results, summary, journal). Raises what the run raises (FolderGone, OSError), and ReportNotWritten when
    only the writing failed: the journal then keeps every result, and nothing is removed."""
    from cxr_edge.run.journal import run_with_journal

    results, summary, journal = run_with_journal(classifier, folder, report, visuals=visuals, **options)
    try:
        write_report(report, results, summary, classifier, folder, visuals, journal.started)
        if csv_beside:
            write_report(Path(report).with_suffix(".csv"), results, summary, classifier, folder)
    except OSError as exc:
        journal.close()
        raise ReportNotWritten(exc.errno, f"{report}: {exc.strerror or exc}") from exc
    if keep_journal:
        journal.close()
    else:
        journal.remove()
        if visuals is not None:
            visuals.remove()
    return results, summary, journal


def write_report(path: os.PathLike | str, results: list[Result], summary: Summary, classifier: Classifier,
                 folder: os.PathLike | str = "", visuals=None, started: float | None = None) -> None:
    """Write the report file atomically, in the format its suffix names (the HTML worklist for .html)."""
    if report_format(path) == "html":
        from cxr_edge.reports.worklist import write_html

        write_html(path, results, summary, classifier, folder, visuals, started or time.time(),
                   warnings_of(classifier, results))
        return
    write_atomic(path, render(report_format(path), results, summary, classifier))
