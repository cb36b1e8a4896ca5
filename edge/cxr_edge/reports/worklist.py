"""The clinician's worklist: one self-contained HTML file per run (`classify --output report.html`).

Most urgent first (referred, then abnormal by probability, then normal, then files that could not be read),
each with its thumbnail, heatmap, label, probabilities as bars, reasons in words and path. Pictures are
embedded as data: URIs, so the file opens offline anywhere, needs no script, and refers to nothing outside
itself. It is streamed to disk picture by picture and renamed into place (atomic), never held whole in memory.
No DICOM header value is written: the reasons are the box's fixed words and the path is the file's.
"""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path

from cxr_edge import DISCLAIMER, __version__
from cxr_edge.atomic import atomic_file
from cxr_edge.labels import LABELS
from cxr_edge.pictures.visuals import Visuals
from cxr_edge.run.classify import Classifier, Result, Summary, printable, rows_of
from cxr_edge.site.site_file import operating_point

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111}
h1{font-size:1.4em;margin:0 0 .3em}
.notice{background:#fff3cd;border:2px solid #b58100;padding:.5em .8em;font-weight:bold;margin:.5em 0}
.warning{background:#fde2e1;border-left:5px solid #b00020;padding:.3em .8em;margin:.3em 0}
table.run{border-collapse:collapse;margin:.6em 0}
table.run th{text-align:left;padding:.1em 1em .1em 0;font-weight:600;vertical-align:top}
table.run td{padding:.1em 0}
.entry{display:flex;gap:1em;border-top:1px solid #ccc;padding:.7em 0;break-inside:avoid;page-break-inside:avoid}
.entry img{width:160px;height:auto;border:1px solid #999;background:#000}
.pics{display:flex;gap:.4em;flex:none}
.nopic{width:160px;height:160px;border:1px dashed #999;display:flex;align-items:center;justify-content:center;color:#666}
.label{font-size:1.15em;font-weight:bold}
.refer{color:#fff;background:#b00020;padding:0 .4em;border-radius:3px;font-size:.85em;margin-left:.5em}
.error .label{color:#b00020}
.bars{display:grid;grid-template-columns:9em 12em 3.5em;gap:2px .5em;align-items:center;margin:.3em 0}
.bar{background:#e6e6e6;height:.8em;border:1px solid #bbb;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.bar span{display:block;height:100%;background:#1f5fa8;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.reasons{margin:.2em 0}
.path{font-family:monospace;color:#333;word-break:break-all}
@page{margin:12mm}
@media print{body{margin:0;font-size:11px}.entry img,.nopic{width:120px}.nopic{height:120px}}
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


def _bars(result: Result) -> str:
    cells = []
    for label, p in zip(LABELS, result.probs):
        cells.append(f'<span>{_e(label)}</span><div class="bar"><span style="width:{100 * p:.1f}%"></span></div>'
                     f'<span>{p:.3f}</span>')
    return f'<div class="bars">{"".join(cells)}</div>'


def _entry(result: Result, visuals: Visuals | None) -> str:
    path = printable(result.path)
    if result.error:
        return (f'<div class="entry error"><div class="pics">{_picture(None, "", "not readable")}</div><div>'
                f'<div class="label">could not be read</div><div class="reasons">{_e(result.error)}</div>'
                f'<div class="path">{_e(path)}</div></div></div>\n')
    pics = _picture(visuals.get(result.path, "thumb") if visuals else None, f"radiograph {path}", "no picture")
    if visuals is not None and visuals.heatmaps:
        pics += _picture(visuals.get(result.path, "heat"), f"heatmap of {path}", "no heatmap")
    refer = '<span class="refer">REFER TO A CLINICIAN</span>' if result.refer else ""
    reasons = f'<div class="reasons">{_e(result.reason)}</div>' if result.reason else ""
    return (f'<div class="entry"><div class="pics">{pics}</div><div>'
            f'<div class="label">{_e(result.label)}{refer}</div>{_bars(result)}{reasons}'
            f'<div class="path">{_e(path)}</div></div></div>\n')


def _run_table(results: list[Result], summary: Summary, classifier: Classifier, folder: Path,
               started: float) -> str:
    bundle = classifier.bundle
    data = bundle.manifest.get("training_data", {})
    trained = "SYNTHETIC data (results mean nothing for real patients)" if bundle.synthetic else data.get("name", "?")
    origin = bundle.origin.summary() if bundle.origin else "origin: not checked"
    counts = ", ".join(f"{label} {n}" for label, n in summary.counts.items())
    skipped = ", ".join(f"{kind} {n}" for kind, n in summary.skipped.items()) or "none"
    rows = [("Run", f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, folder {printable(str(folder))}"),
            ("Bundle", f"{bundle.path.name} ({bundle.manifest.get('quantization')}), trained on {trained}; {origin}"),
            ("Operating point", f"stage 1 threshold {classifier.threshold:.4f} and confidence floor "
                                f"{classifier.min_confidence:.2f}, from {operating_point(classifier)['source']}"),
            ("Images", f"{summary.images}: {counts}"),
            ("Referred to a clinician", str(summary.referred)),
            ("Could not be read", str(summary.errors)),
            ("Skipped (not classified)", skipped),
            ("Made by", f"cxr-edge {__version__}; {classifier.selftest.summary()}")]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="run">{body}</table>\n'


def write_html(path: os.PathLike | str, results: list[Result], summary: Summary, classifier: Classifier,
               folder: os.PathLike | str, visuals: Visuals | None, started: float, warnings: list[str]) -> None:
    """Write the worklist to `path` atomically, streaming one entry at a time."""
    rows = sorted(rows_of(results), key=lambda r: (urgency(r), r.path))
    with atomic_file(path) as fh:
        write = lambda text: fh.write(text.encode("utf-8", "surrogateescape"))  # noqa: E731
        write(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
              f'<meta name="viewport" content="width=device-width,initial-scale=1">'
              f"<title>cxr-edge worklist</title><style>{_CSS}</style></head><body>\n"
              f"<h1>Chest X-ray worklist</h1>\n<div class=\"notice\">{_e(DISCLAIMER)}</div>\n")
        for warning in warnings:
            write(f'<div class="warning">{_e(warning)}</div>\n')
        write(_run_table(results, summary, classifier, Path(folder), started))
        for result in rows:
            write(_entry(result, visuals))
        write(f'<p class="notice">{_e(DISCLAIMER)}</p>\n</body></html>\n')
