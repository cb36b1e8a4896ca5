"""The clinician's worklist (`classify --output report.html`) and the 100-column terminal table."""

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from PIL import Image

from cxr_edge import DISCLAIMER
from cxr_edge.cli import main
from cxr_edge.pictures.visuals import THUMB_SIDE, visuals_dir
from cxr_edge.reports.table import MIN_WIDTH, WIDTH, display_width
from cxr_edge.reports.triage import urgency
from cxr_edge.run.result import Result
from cxr_edge.reasons import CATALOGUE, from_text

from tests.browser import chromium

pytestmark = pytest.mark.slow


class _Page(HTMLParser):
    """What the tests look at: each entry's label and path in order, every tag and attribute, the text."""

    def __init__(self):
        super().__init__()
        self.entries, self.tags, self.text, self.images = [], [], [], []
        self._field = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        classes = attrs.get("class", "").split()
        if "entry" in classes:
            self.entries.append({"error": "error" in classes, "label": "", "path": "", "images": 0})
        elif classes and classes[0] in ("label", "path") and self.entries:
            self._field = classes[0]
        if tag == "img":
            self.images.append(attrs)
            self.entries[-1]["images"] += 1

    def handle_endtag(self, tag):
        if tag == "div":
            self._field = None

    def handle_data(self, data):
        self.text.append(data)
        if self._field:
            self.entries[-1][self._field] += data


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture()
def big_image_stick(usb_stick):
    """The usual stick plus a full-size (2000x2400) radiograph-like PNG."""
    src = Image.open(usb_stick / "patient-0.png").convert("L").resize((2000, 2400))
    src.save(usb_stick / "full-size.png")
    return usb_stick


def test_html_worklist_is_self_contained_sorted_and_complete(big_image_stick, edge_bundle, tmp_path):
    stick = big_image_stick
    before = sorted(p.relative_to(stick) for p in stick.rglob("*"))
    report, csv_report = tmp_path / "out" / "report.html", tmp_path / "out" / "report.csv"
    report.parent.mkdir()
    args = ["classify", str(stick), "--model", str(edge_bundle), "--format", "csv"]
    result = CliRunner().invoke(main, [*args, "--output", str(report), "--html-heatmaps"])
    assert result.exit_code == 1, result.output  # the stick's bad files
    assert CliRunner().invoke(main, [*args, "--output", str(csv_report)]).exit_code == 1
    assert sorted(p.relative_to(stick) for p in stick.rglob("*")) == before  # nothing written to the stick
    assert not visuals_dir(report).exists() and sorted(os.listdir(report.parent)) == ["report.csv", "report.html"]

    import csv

    rows = list(csv.DictReader(line for line in csv_report.read_text().splitlines() if not line.startswith("#")))
    page = _parse(report)
    # one entry per row, most urgent first
    assert sorted(e["path"] for e in page.entries) == sorted(r["path"] for r in rows)
    by_path = {r["path"]: r for r in rows}
    expected = sorted(rows, key=lambda r: (urgency(_result(r)), r["path"]))
    assert [e["path"] for e in page.entries] == [r["path"] for r in expected]
    kinds = [("error" if r["error"] else "refer" if r["refer"] == "true" else r["label"] != "normal")
             for r in expected]
    assert kinds == sorted(kinds, key=lambda k: {"refer": 0, True: 1, False: 2, "error": 3}[k])
    assert kinds[0] == "refer" and kinds[-1] == "error"
    # every classified image has its thumbnail and heatmap, small, embedded; error rows have none
    for entry in page.entries:
        assert entry["images"] == (0 if by_path[entry["path"]]["error"] else 2), entry
    for img in page.images:
        src = img["src"]
        assert src.startswith("data:image/jpeg;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert len(data) < 60_000 and max(Image.open(io.BytesIO(data)).size) <= THUMB_SIDE
    # nothing outside the file: no scripts, links, external sources or URLs
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        for name, value in attrs.items():
            assert name not in ("href", "srcset") and not (name == "src" and not value.startswith("data:"))
    text = " ".join(page.text)
    assert text.count(DISCLAIMER) == 2 and "trained on synthetic data" in text
    assert "origin is not verified" in text and "not calibrated for this site" in text
    assert "http" not in re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", "", report.read_text())


def _result(row) -> Result:
    probs = tuple(float(row[f"p_{label}"]) for label in ("normal", "lung_opacity", "viral_pneumonia", "covid19")) \
        if row["label"] else ()
    return Result(row["path"], row["label"], probs, row["refer"] == "true", from_text(row["reason"]), row["error"])


def test_heatmap_files_are_at_most_1024_px(big_image_stick, edge_bundle, tmp_path):
    out = tmp_path / "heat"
    result = CliRunner().invoke(main, ["classify", str(big_image_stick), "--model", str(edge_bundle),
                                       "--format", "csv", "--heatmaps", str(out)])
    assert result.exit_code == 1, result.output
    assert Image.open(out / "full-size.png.heatmap.png").size == (853, 1024)  # 2000x2400 scaled to fit


def test_html_heatmaps_needs_an_html_report(usb_stick, edge_bundle, tmp_path):
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--html-heatmaps",
                                       "--output", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and "--html-heatmaps needs an HTML report" in result.output


def test_an_interrupted_html_run_resumes_to_the_same_report(usb_stick, edge_bundle, tmp_path, monkeypatch):
    """The pictures wait beside the journal; a run that dies after some images leaves both, and the rerun's
    report equals an uninterrupted run's (its run date is the first run's start)."""
    import cxr_edge.run.journal as journal_module

    report, clean = tmp_path / "a" / "report.html", tmp_path / "b" / "report.html"
    report.parent.mkdir()
    clean.parent.mkdir()
    args = ["classify", str(usb_stick), "--model", str(edge_bundle), "--format", "csv", "--html-heatmaps"]
    calls = []
    original = journal_module.Journal.append

    def dying_append(self, key, result):
        original(self, key, result)
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the power cut, after three images were recorded

    monkeypatch.setattr(journal_module.Journal, "append", dying_append)
    CliRunner().invoke(main, [*args, "--output", str(report)])
    assert not report.exists() and any(visuals_dir(report).iterdir())
    monkeypatch.setattr(journal_module.Journal, "append", original)
    resumed = CliRunner().invoke(main, [*args, "--output", str(report)])
    assert resumed.exit_code == 1 and "resumed an interrupted run: 3 image(s)" in resumed.output
    CliRunner().invoke(main, [*args, "--output", str(clean)])
    undated = lambda p: re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d, folder", "DATE, folder", p.read_text())  # noqa: E731
    assert undated(report) == undated(clean)
    assert not visuals_dir(report).exists()


def test_the_report_renders_in_headless_chromium(usb_stick, edge_bundle, tmp_path):
    """A real browser opens the file offline: a screenshot of non-trivial size, and the text the browser holds
    has the notice and every image's path."""
    base = chromium(tmp_path / "profile")
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format", "csv",
                                       "--output", str(report)])
    assert result.exit_code == 1, result.output
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1000,1400", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1000, 1400) and shot.stat().st_size > 20_000
    lo, hi = image.getextrema()
    assert hi - lo > 100  # not a blank page: dark text and pictures on white
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", dom))
    assert DISCLAIMER in text
    for line in result.stdout.splitlines():
        if line and not line.startswith(("#", "path,")):
            path = line.split(",")[0]
            assert path in text, path


def test_every_table_line_fits_100_columns(usb_stick, edge_bundle, tmp_path):
    deep = usb_stick / ("a-very-long-folder-name-from-a-dr-console-export" * 2) / "another-level"
    deep.mkdir(parents=True)
    shutil.copy(usb_stick / "patient-0.png", deep / "PATIENT-WITH-A-LONG-FILE-NAME-0000000000001.png")
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format", "table"],
                                env={"COLUMNS": ""})  # no terminal, no $COLUMNS: the default width
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    # a long path keeps its end, the file name
    assert any(line.startswith("...") and "NAME-0000000000001.png" in line for line in lines), result.stdout
    assert "could not be read (" in result.stdout and "why: " in result.stdout
    assert "Created TensorFlow Lite XNNPACK delegate" not in result.output


@pytest.mark.parametrize("columns", [80, 120])
def test_the_table_follows_the_terminal_width_and_wide_characters(usb_stick, edge_bundle, columns):
    """$COLUMNS sets the width (as a terminal's size would); a file name in CJK characters, two columns each,
    keeps its row aligned with the others, however long it is."""
    ward = usb_stick / "ward-2"
    shutil.copy(ward / "patient-2.png", ward / "胸部X線写真-患者.png")
    shutil.copy(ward / "patient-2.png", ward / ("長い名前の検査画像" * 8 + ".png"))
    result = CliRunner().invoke(main, ["classify", str(ward), "--model", str(edge_bundle), "--format", "table"],
                                env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(display_width(line) for line in lines) <= columns, max(lines, key=display_width)
    rows = [line for line in lines[2:] if line.strip() and not line.startswith(("p_", "why", "  "))][:3]
    assert len(rows) == 3 and any("患者" in row for row in rows) and any(row.startswith("...") for row in rows)
    label = re.compile(r"\s{2}(Normal|Lung opacity|Viral pneumonia|COVID-19)\s")
    starts = {display_width(row[:label.search(row).start(1)]) for row in rows}
    assert len(starts) == 1, rows  # the label column starts at one column on every row
    narrow = CliRunner().invoke(main, ["classify", str(ward), "--model", str(edge_bundle), "--format", "table"],
                                env={"COLUMNS": "40"})
    assert max(display_width(line) for line in narrow.stdout.splitlines()) <= MIN_WIDTH


def test_reason_codes_cover_every_fixed_reason():
    from pydicom import Dataset

    from cxr_edge.inputs.dicom import header_reasons

    ds = Dataset()
    ds.ViewPosition, ds.BodyPartExamined, ds.Modality, ds.PresentationIntentType = "LL", "HAND", "MR", "FOR PROCESSING"
    import numpy as np

    from cxr_edge.run.classify import sanity_problems

    reasons = header_reasons(ds) + sanity_problems(np.zeros((50, 400), np.uint8))
    codes = [CATALOGUE[reason.code].short for reason in reasons]  # the table's names for them
    assert codes == ["lateral", "body-part", "modality", "raw", "small", "aspect", "flat"]


def test_interpreter_info_line_stays_off_the_terminal(usb_stick, edge_bundle):
    proc = subprocess.run([sys.executable, "-c", "from cxr_edge.cli import main; main()", "classify",
                           str(usb_stick / "ward-2"), "--model", str(edge_bundle), "--format", "csv"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "XNNPACK delegate" not in proc.stderr and "referred to a clinician" in proc.stderr


@pytest.mark.parametrize("columns", [80, 100])
def test_the_file_name_wins_over_the_why_codes_when_the_terminal_is_narrow(columns):
    """Rows as a barely trained model gives them (every row referred for several reasons): the why column keeps
    its first codes and at least 14 columns, the path its end and everything else; no line is wider than the
    terminal."""
    from cxr_edge.reports.table import to_table

    reason = ("screen-positive: probability of an abnormal finding 0.53, above the bundle's screening threshold "
              "0.51; near-constant pixels (1st-99th percentile spread 0 gray levels); out-of-distribution: unlike "
              "the radiographs the model learned from (score 9.10, limit 3.00); low confidence: probability of "
              "Viral pneumonia 0.180, below the confidence floor 0.600")
    long = "a-very-long-folder-name-from-a-dr-console-export/PATIENT-WITH-A-LONG-FILE-NAME-0000000000001.png"
    rows = [Result(long, "viral_pneumonia", (0.47, 0.17, 0.18, 0.18), True, from_text(reason)),
            Result("short.png", "normal", (0.9, 0.04, 0.03, 0.03))]
    lines = to_table(rows, "2 images", [], width=columns).splitlines()
    assert max(display_width(line) for line in lines) <= columns
    row = next(line for line in lines if line.startswith("..."))
    assert row.split()[0].endswith("0000000000001.png")
    codes = row.split("yes")[-1].strip()
    assert codes.startswith("screen,") and (columns == 80 or (len(codes) == 14 and codes.startswith("screen,flat")))
