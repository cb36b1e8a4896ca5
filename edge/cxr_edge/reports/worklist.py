"""The clinician's worklist: one self-contained HTML file per run (`classify --output report.html`).

Written for the clinician who reads it: the notice, warnings in plain words, the counts and whether the box is
set for this clinic come first; then the images, most urgent first (referred, then abnormal by probability,
then normal, then files that could not be read), each with its thumbnail and heatmap, the label in words, the
probability of an abnormal finding beside the screening threshold that decides it, the four probabilities as
bars, and the reasons in words. The engineering detail (bundle, gate, self-test, signature, operating point)
closes the file. Pictures are embedded as data: URIs, so the file opens offline anywhere, needs no script, and
refers to nothing outside itself. It is streamed to disk picture by picture and renamed into place (atomic),
never held whole in memory. No DICOM header value is written: the reasons are the box's fixed words and the
path is the file's.
"""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path

from cxr_edge import DISCLAIMER, __version__
from cxr_edge.atomic import atomic_file
from cxr_edge.labels import LABELS, in_words
from cxr_edge.pictures.heatmap import heatmap_legend
from cxr_edge.pictures.visuals import Visuals
from cxr_edge.run.classify import Classifier, Summary, rows_of
from cxr_edge.run.result import Result, printable
from cxr_edge.reasons import distinct_decimals
from cxr_edge.site.site_file import operating_point

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;max-width:60em}
h1{font-size:1.4em;margin:0 0 .3em}
h2{font-size:1.1em;margin:1.2em 0 .3em}
.notice{background:#fff3cd;border:2px solid #b58100;padding:.5em .8em;font-weight:bold;margin:.5em 0}
.warning{background:#fde2e1;border-left:5px solid #b00020;padding:.3em .8em;margin:.3em 0}
table.run{border-collapse:collapse;margin:.6em 0}
table.run th{text-align:left;padding:.1em 1em .1em 0;font-weight:600;vertical-align:top}
table.run td{padding:.1em 0}
.howto{color:#333;margin:.4em 0 .8em}
.entry{display:flex;gap:1em;border-top:1px solid #ccc;padding:.7em 0;break-inside:avoid;page-break-inside:avoid}
.entry img{width:160px;height:auto;border:1px solid #999;background:#000}
figure{margin:0;width:160px}
figcaption{font-size:.8em;color:#333}
.pics{display:flex;gap:.4em;flex:none;align-items:flex-start}
.nopic{width:160px;height:160px;border:1px dashed #999;display:flex;align-items:center;justify-content:center;color:#666}
.label{font-size:1.15em;font-weight:bold}
.refer{color:#fff;background:#b00020;padding:0 .4em;border-radius:3px;font-size:.85em;margin-left:.5em}
.error .label{color:#b00020}
.screen{margin:.3em 0}
.scale{position:relative;width:12em;height:.8em;background:#e6e6e6;border:1px solid #bbb;display:inline-block;
  vertical-align:middle;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.scale span{position:absolute;left:0;top:0;bottom:0;background:#b00020;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.scale i{position:absolute;top:-.25em;bottom:-.25em;width:2px;background:#000;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.bars{display:grid;grid-template-columns:9em 12em 3.5em;gap:2px .5em;align-items:center;margin:.3em 0}
.bar{background:#e6e6e6;height:.8em;border:1px solid #bbb;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.bar span{display:block;height:100%;background:#1f5fa8;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.reasons{margin:.2em 0}
.path{font-family:monospace;color:#333;word-break:break-all}
.details{border-top:2px solid #999;margin-top:1.5em;color:#333;font-size:.9em}
@page{size:A4;margin:12mm}
@media print{body{margin:0;font-size:11px}.entry img,.nopic,figure{width:120px}.nopic{height:120px}}
"""


def urgency(result: Result) -> tuple:
    """Sort key, most urgent first: referred, abnormal (by abnormal probability), normal, then error rows."""
    if result.error:
        return (3, 0.0)
    abnormal = 1.0 - result.probs[0]
    if result.refer:
        return (0, -abnormal)
    return (1 if result.label != LABELS[0] else 2, -abnormal)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _picture(data: bytes | None, alt: str, missing: str) -> str:
    if data is None:
        return f'<div class="nopic">{_e(missing)}</div>'
    return f'<img alt="{_e(alt)}" src="data:image/jpeg;base64,{base64.b64encode(data).decode("ascii")}">'


def _screening(result: Result, classifier: Classifier) -> str:
    """p(abnormal) on a scale with the screening threshold marked: what made the label normal or abnormal."""
    abnormal, threshold = 1.0 - result.probs[0], classifier.threshold
    side = "above" if abnormal >= threshold else "below"
    verdict = "abnormal" if result.label != LABELS[0] else "normal"
    whose = "this site's" if classifier.site else "the bundle's"
    shown, limit = distinct_decimals(abnormal, threshold)
    return (f'<div class="screen">Probability of an abnormal finding <b>{shown}</b> '
            f'<span class="scale" aria-hidden="true"><span style="width:{100 * abnormal:.1f}%"></span>'
            f'<i style="left:{100 * threshold:.1f}%"></i></span> '
            f'{side} {whose} screening threshold {limit}, so {verdict}</div>')


def _bars(result: Result) -> str:
    cells = []
    for label, p in zip(LABELS, result.probs):
        cells.append(f'<span>{_e(in_words(label))}</span><div class="bar"><span style="width:{100 * p:.1f}%"></span>'
                     f'</div><span>{p:.2f}</span>')
    return f'<div class="bars">{"".join(cells)}</div>'


def _entry(result: Result, classifier: Classifier, visuals: Visuals | None) -> str:
    path = printable(result.path)
    if result.error:
        return (f'<div class="entry error"><div class="pics">{_picture(None, "", "not readable")}</div><div>'
                f'<div class="label">Could not be read</div><div class="reasons">{_e(result.error)}</div>'
                f'<div class="path">{_e(path)}</div></div></div>\n')
    pics = _picture(visuals.get(result.path, "thumb") if visuals else None, f"radiograph {path}", "no picture")
    if visuals is not None and visuals.heatmaps:
        heat = _picture(visuals.get(result.path, "heat"), f"heatmap of {path}", "no heatmap")
        pics += f'<figure>{heat}<figcaption class="legend">{_e(heatmap_legend(result.label))}</figcaption></figure>'
    refer = '<span class="refer">REFER TO A CLINICIAN</span>' if result.refer else ""
    reasons = "".join(f"<li>{_e(reason.words())}</li>" for reason in result.reasons)
    reasons = f'<ul class="reasons">{reasons}</ul>' if reasons else ""
    return (f'<div class="entry"><div class="pics">{pics}</div><div>'
            f'<div class="label">{_e(in_words(result.label))}{refer}</div>{_screening(result, classifier)}'
            f'{_bars(result)}{reasons}<div class="path">{_e(path)}</div></div></div>\n')


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="run">{body}</table>\n'


def _run_table(summary: Summary, classifier: Classifier, folder: Path, started: float) -> str:
    """What a clinician needs of the run: when, which folder, the counts, and whether the box is set for them."""
    counts = ", ".join(f"{in_words(label)} {n}" for label, n in summary.counts.items())
    skipped = ", ".join(f"{kind} {n}" for kind, n in summary.skipped.items()) or "none"
    site = classifier.site
    setting = (f"set for this clinic (site file {site.name!r}, calibrated {site.created})" if site else
               "not set for this clinic: the threshold chosen on the training images")
    return _table([("Run", f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, folder "
                           f"{printable(str(folder))}"),
                   ("Images", f"{summary.images}: {counts}"),
                   ("Referred to a clinician", str(summary.referred)),
                   ("Could not be read", str(summary.errors)),
                   ("Skipped (not classified)", skipped),
                   ("Screening threshold", f"{classifier.threshold:.2f}, {setting}")])


def _how_to_read(classifier: Classifier, heatmaps: bool) -> str:
    text = ("Each image's label comes in two steps: first normal or abnormal, by whether the probability of an "
            f"abnormal finding reaches the screening threshold ({classifier.threshold:.2f}; usually well under one "
            "half, so that few abnormal images are missed); then, for an abnormal image, the most probable of lung "
            "opacity, viral pneumonia and COVID-19. So an image can be labelled abnormal while 'Normal' has the "
            "longest bar: the reasons then say so. \"Refer to a clinician\" means the result itself is not reliable "
            "enough, for the reasons given.")
    if heatmaps:
        text += (" Heatmaps show where the model looked: the parts of the image that, when hidden, changed its "
                 "result most. They are not outlines of lesions.")
    return f'<p class="howto">{_e(text)}</p>\n'


def _details(classifier: Classifier, warnings) -> str:
    """The engineering detail, for the technician or engineer: bundle, gate, signature, self-test, warnings."""
    bundle = classifier.bundle
    data = bundle.manifest.get("training_data", {})
    trained = "SYNTHETIC data (results mean nothing for real patients)" if bundle.synthetic else data.get("name", "?")
    gate = bundle.manifest.get("parity_gate", {})
    gate_text = (f"{gate.get('verdict', 'PASS' if bundle.deployable else 'FAIL')}"
                 + (f" on {gate['n_images']:,} images" if "n_images" in gate else "")
                 + ("" if bundle.deployable else "; used with --allow-unverified"))
    point = operating_point(classifier)
    rows = [("Bundle", f"{bundle.path.name} ({bundle.manifest.get('quantization')}), trained on {trained}"),
            ("Float-vs-quantized parity gate", gate_text),
            ("Origin", bundle.origin.summary() if bundle.origin else "not checked"),
            ("Operating point", f"stage 1 threshold {point['threshold']:.4f}, confidence floor "
                                f"{point['min_confidence']:.2f}, from {point['source']}"),
            ("Self-test", classifier.selftest.summary().removeprefix("self-test: ")),
            ("Made by", f"cxr-edge {__version__}")]
    rows += [("Warning", w.text) for w in warnings]
    return f'<section class="details"><h2>Technical details</h2>\n{_table(rows)}</section>\n'


def write_html(path: os.PathLike | str, results: list[Result], summary: Summary, classifier: Classifier,
               folder: os.PathLike | str, visuals: Visuals | None, started: float, warnings) -> None:
    """Write the worklist to `path` atomically, streaming one entry at a time. `warnings` are the run's
    (cxr_edge.reports.formats.RunWarning): their plain words at the top, their full text in the details."""
    rows = sorted(rows_of(results), key=lambda r: (urgency(r), r.path))
    with atomic_file(path) as fh:
        write = lambda text: fh.write(text.encode("utf-8", "surrogateescape"))  # noqa: E731
        write(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
              f'<meta name="viewport" content="width=device-width,initial-scale=1">'
              f"<title>cxr-edge worklist</title><style>{_CSS}</style></head><body>\n"
              f"<h1>Chest X-ray worklist</h1>\n<div class=\"notice\">{_e(DISCLAIMER)}</div>\n")
        for warning in warnings:
            write(f'<div class="warning">{_e(warning.plain)}</div>\n')
        write(_run_table(summary, classifier, Path(folder), started))
        write(_how_to_read(classifier, visuals is not None and visuals.heatmaps))
        for result in rows:
            write(_entry(result, classifier, visuals))
        write(f'<p class="notice">{_e(DISCLAIMER)}</p>\n')
        write(_details(classifier, warnings))
        write("</body></html>\n")
