"""The clinician's worklist: one self-contained HTML file per run (`classify --output report.html`).

Written for the clinician who reads it: the notice, warnings in plain words, the counts and whether the box is
set for this clinic come first; then the images, most urgent first (cxr_edge.reports.triage: likely abnormal by
probability, then those the AI cannot judge, then likely normal, then files that could not be read), each with its thumbnail and heatmap, the label in words, the
probability of an abnormal finding beside the screening threshold that decides it, the four probabilities as
bars, and the reasons in words. The engineering detail (bundle, gate, self-test, signature, operating point)
closes the file. Pictures are embedded as data: URIs, so the file opens offline anywhere, needs no script, and
refers to nothing outside itself. It is streamed to disk picture by picture and renamed into place (atomic),
never held whole in memory. No DICOM header value is written: the reasons are the box's fixed words and the
path is the file's. The page is templates/report.html (Jinja2, autoescaped, as the node's screen), its styles
templates/report.css.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cxr_edge import __version__, notice
from cxr_edge.atomic import atomic_file
from cxr_edge.labels import LABELS, in_words
from cxr_edge.language import _, current, decimal, when
from cxr_edge.pictures.heatmap import heatmap_legend
from cxr_edge.pictures.visuals import Visuals
from cxr_edge.reasons import distinct_decimals
from cxr_edge.run.classify import Classifier, Summary, rows_of
from cxr_edge.run.result import Result, printable
from cxr_edge.reports.triage import urgency
from cxr_edge.site.site_file import operating_point


def _environment():
    """The report's template (templates/report.html, its styles report.css), autoescaped: every path, error and
    reason is text in it, never markup."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from cxr_edge.language import install

    env = Environment(loader=PackageLoader("cxr_edge.reports"), autoescape=select_autoescape(default=True),
                      trim_blocks=False, extensions=["jinja2.ext.i18n"])
    install(env)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.globals.update(in_words=in_words, printable=printable, heatmap_legend=heatmap_legend, labels=LABELS,
                       zip=zip, notice=notice, decimal=decimal)
    return env


def _screening(result: Result, classifier: Classifier) -> dict:
    """p(abnormal) on a scale with the screening threshold marked: what made the label normal or abnormal."""
    abnormal, threshold = 1.0 - result.probs[0], classifier.threshold
    shown, limit = distinct_decimals(abnormal, threshold)
    return {"abnormal": abnormal, "shown": shown, "limit": limit, "above": abnormal >= threshold,
            "site": classifier.site is not None}


def _run_rows(summary: Summary, classifier: Classifier, folder: Path, started: float) -> list[tuple[str, str]]:
    """What a clinician needs of the run: when, which folder, the counts, and whether the box is set for them."""
    counts = ", ".join(f"{in_words(label)} {n}" for label, n in summary.counts.items())
    skipped = ", ".join(f"{_(kind)} {n}" for kind, n in summary.skipped.items()) or _("none")
    site = classifier.site
    setting = (_("set for this clinic (site file %(name)s, calibrated %(created)s)") % {
        "name": repr(site.name), "created": site.created} if site else
        _("not set for this clinic: the threshold chosen on the training images"))
    return [(_("Run"), _("%(when)s, folder %(folder)s") % {"when": when(started), "folder": printable(str(folder))}),
            (_("Images"), f"{summary.images}: {counts}"),
            (_("Referred to a clinician"), str(summary.referred)),
            (_("Could not be read"), str(summary.errors)),
            (_("Skipped (not classified)"), skipped),
            (_("Screening threshold"), f"{decimal(classifier.threshold, 2)}, {setting}")]


def _how_to_read(classifier: Classifier, heatmaps: bool) -> str:
    text = _("Each image's label comes in two steps: first normal or abnormal, by whether the probability of an "
             "abnormal finding reaches the screening threshold (%(threshold)s; usually well under one half, so that "
             "few abnormal images are missed); then, for an abnormal image, the most probable of lung opacity, viral "
             "pneumonia and COVID-19. So an image can be labelled abnormal while 'Normal' has the longest bar: the "
             "reasons then say so. \"Refer to a clinician\" means the result itself is not reliable enough, for "
             "the reasons given.") % {"threshold": decimal(classifier.threshold, 2)}
    if heatmaps:
        text += " " + _("Heatmaps show where the model looked: the parts of the image that, when hidden, changed "
                        "its result most. They are not outlines of lesions.")
    return text


def _details(classifier: Classifier, warnings) -> list[tuple[str, str]]:
    """The engineering detail, for the technician or engineer: bundle, gate, signature, self-test, warnings."""
    bundle = classifier.bundle
    data = bundle.manifest.get("training_data", {})
    trained = "SYNTHETIC data (results mean nothing for real patients)" if bundle.synthetic else data.get("name", "?")
    gate = bundle.manifest.get("parity_gate", {})
    gate_text = (f"{gate.get('verdict', 'PASS' if bundle.deployable else 'FAIL')}"
                 + (f" on {gate['n_images']:,} images" if "n_images" in gate else "")
                 + ("" if bundle.deployable else "; used with --allow-unverified"))
    point = operating_point(classifier)
    rows = [(_("Bundle"), f"{bundle.path.name} ({bundle.manifest.get('quantization')}), trained on {trained}"),
            (_("Float-vs-quantized parity gate"), gate_text),
            (_("Origin"), bundle.origin.summary() if bundle.origin else "not checked"),
            (_("Operating point"), f"stage 1 threshold {point['threshold']:.4f}, confidence floor "
                                   f"{point['min_confidence']:.2f}, from {point['source']}"),
            (_("Self-test"), classifier.selftest.summary().removeprefix("self-test: ")),
            (_("Made by"), f"cxr-edge {__version__}")]
    return rows + [(_("Warning"), w.text) for w in warnings]


def write_html(path: os.PathLike | str, results: list[Result], summary: Summary, classifier: Classifier,
               folder: os.PathLike | str, visuals: Visuals | None, started: float, warnings) -> None:
    """Write the worklist to `path` atomically, streamed from the template one piece at a time (each picture is
    read and encoded as its entry is written). `warnings` are the run's (cxr_edge.reports.formats.RunWarning):
    their plain words at the top, their full text in the details."""
    from importlib.resources import files

    rows = sorted(rows_of(results), key=lambda r: (urgency(r), r.path))
    template = _environment().get_template("report.html")
    pieces = template.generate(
        css=files("cxr_edge.reports").joinpath("templates/report.css").read_text(encoding="utf-8"),
        warnings=warnings, run_rows=_run_rows(summary, classifier, Path(folder), started),
        how_to_read=_how_to_read(classifier, visuals is not None and visuals.heatmaps), rows=rows,
        pictures=visuals, screening=lambda result: _screening(result, classifier), threshold=classifier.threshold,
        details=_details(classifier, warnings), lang=current())
    with atomic_file(path) as fh:
        for piece in pieces:
            fh.write(piece.encode("utf-8", "surrogateescape"))
