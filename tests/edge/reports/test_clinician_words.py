"""Results a clinician reads: labels in words, the screen-positive reason in every form, the HTML worklist's
header in plain words with the engineering detail at its end, and a legend on every heatmap."""

import csv
import html
import json
import re
import subprocess

import pytest
from click.testing import CliRunner
from PIL import Image

from cxr_edge import DISCLAIMER
from cxr_edge.bundle.files import MANIFEST, sha256_bytes
from cxr_edge.cli import main
from cxr_edge.labels import LABELS, in_words
from cxr_edge.site.site_file import SITE_FORMAT

from tests.browser import chromium

pytestmark = pytest.mark.slow
SCREEN = re.compile(r"^screen-positive: probability of an abnormal finding (\d\.\d+), above this site's screening "
                    r"threshold (\d\.\d+)$")
THRESHOLD = 0.01  # this clinic screens with a very low threshold: nearly every image is abnormal


def test_labels_in_words():
    assert [in_words(label) for label in LABELS] == ["Normal", "Lung opacity", "Viral pneumonia", "COVID-19"]
    assert in_words("") == ""


@pytest.fixture()
def low_threshold_site(edge_bundle, tmp_path):
    """A site file with a screening threshold of 0.01, as `cxr-edge calibrate` writes them."""
    site = tmp_path / "site.json"
    site.write_text(json.dumps({
        "format": SITE_FORMAT, "site": "test clinic", "created": "2026-12-01", "threshold": THRESHOLD,
        "min_confidence": 0.0, "expected": {}, "figures": {},
        "bundle": {"manifest_sha256": sha256_bytes((edge_bundle / MANIFEST).read_bytes())}}))
    return site


@pytest.fixture()
def normal_stick(tmp_path, synth_small):
    stick = tmp_path / "stick"
    stick.mkdir()
    for i in range(1, 7):
        Image.open(synth_small / f"Normal/images/Normal-{i}.png").resize((160, 160)).save(stick / f"normal-{i}.png")
    return stick


def _classify(stick, bundle, site, *args):
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(bundle), "--site", str(site), *args],
                                env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result


def test_the_screen_positive_reason_in_every_form(normal_stick, edge_bundle, low_threshold_site, tmp_path):
    reports = {suffix: tmp_path / f"report{suffix}" for suffix in (".csv", ".json", ".jsonl", ".html")}
    table = ""
    for suffix, report in reports.items():
        table = _classify(normal_stick, edge_bundle, low_threshold_site, "--format", "table", "--output",
                          str(report)).stdout
    rows = json.loads(reports[".json"].read_text())["results"]
    # "normal" is the most probable single class, but p(abnormal) passed the threshold: a disease label
    screened = [r for r in rows if r["label"] != "normal"
                and r["p_normal"] >= max(r[f"p_{label}"] for label in LABELS[1:])]
    assert screened, rows  # the tiny model calls these synthetic normals normal, so the threshold made them abnormal
    for row in screened:
        first = row["reason"].split("; ")[0]
        abnormal, threshold = SCREEN.match(first).groups()
        assert float(threshold) == pytest.approx(THRESHOLD) and float(abnormal) > THRESHOLD
        assert abs(float(abnormal) - (1 - row["p_normal"])) < 0.01  # printed to two decimals
        assert row["label_text"] == in_words(row["label"])
        # explaining a label is no reason to refer: with the floor at 0, nothing else refers these images
        assert row["refer"] is False and row["reason"] == first
    for row in rows:
        if row not in screened:
            assert "screen-positive" not in row["reason"]
    # CSV: the same rows, reason and label in words
    lines = [line for line in reports[".csv"].read_text().splitlines() if not line.startswith("#")]
    by_path = {r["path"]: r for r in csv.DictReader(lines)}
    for row in screened:
        assert by_path[row["path"]]["reason"] == row["reason"]
        assert by_path[row["path"]]["label_text"] == in_words(row["label"])
    jsonl = [json.loads(line) for line in reports[".jsonl"].read_text().splitlines()[1:]]
    assert [r["reason"] for r in jsonl] == [r["reason"] for r in rows]
    # table: the label in words and the reason's code, with its meaning in the legend
    for row in screened:
        line = next(line for line in table.splitlines() if line.startswith(row["path"]))
        assert f"  {in_words(row['label'])}  " in line and line.rstrip().endswith("screen")
    assert "screen = abnormal because the probability of an abnormal finding passed the screening" in \
        table.replace("\n  ", " ")
    # HTML: the reason in words, and p(abnormal) beside the threshold
    page = html.unescape(reports[".html"].read_text())  # entities as the escaper writes them: the words
    for row in screened:
        assert f"<li>{row['reason']}</li>" in page
    assert len(re.findall(r"above this site's screening threshold 0\.01, so abnormal", page)) >= len(screened)


def test_the_worklist_header_speaks_plainly_and_details_close_it(usb_stick, edge_bundle, tmp_path):
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format", "csv",
                                       "--output", str(report), "--html-heatmaps"])
    assert result.exit_code == 1, result.output  # the stick's unreadable files
    page = report.read_text()
    head, details = page.split('<section class="details">')
    first_entry = head.index('<div class="entry')
    header = head[:first_entry]
    assert DISCLAIMER in header
    assert "This model learned from made-up (synthetic) images" in header
    assert "Where this model came from is not verified" in header
    assert "Not yet set for this clinic's patients" in html.unescape(header)
    assert "Screening threshold" in header and "Images" in header
    for engineering in ("parity gate", "--allow-unverified", "self-test", "fingerprint", "XNNPACK", "stage 1",
                        "lung_opacity", "viral_pneumonia", "covid19"):
        assert engineering not in header, engineering
    for detail in ("Technical details", "Float-vs-quantized parity gate", "Self-test", "Operating point",
                   "origin is not verified", "not calibrated for this site"):
        assert detail in details, detail
    # every heatmap has its legend; the labels are in words
    heatmaps = page.count('alt="heatmap of ')
    assert heatmaps and page.count("It shows where the model looked, not the outline of a lesion.") == heatmaps
    labels = re.findall(r'<div class="label">([^<]*)<', page)
    assert labels and set(labels) <= {*map(in_words, LABELS), "Could not be read"}


def test_the_worklist_in_chromium_at_a4_width(normal_stick, edge_bundle, low_threshold_site, tmp_path):
    """Chromium renders the worklist at A4's width (794 CSS px) and prints it to PDF; the text it lays out holds
    the screen-positive reason and the heatmap legend, and no line of the page is wider than the paper."""
    base = [*chromium(tmp_path / "profile"), "--window-size=794,1123"]
    report = tmp_path / "report.html"
    _classify(normal_stick, edge_bundle, low_threshold_site, "--format", "csv", "--output", str(report),
              "--html-heatmaps")
    # the layout's width: a script-free page cannot report it, so a copy with one line of script measures it
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace(
        "</body>", "<script>document.title='W'+document.documentElement.scrollWidth</script></body>"))
    dom = subprocess.run([*base, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert int(re.search(r"<title>W(\d+)</title>", dom).group(1)) <= 794  # nothing sticks out to the right
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", dom)))
    text = html.unescape(text)
    assert "screen-positive: probability of an abnormal finding" in text
    assert "above this site's screening threshold 0.01, so abnormal" in text
    assert "It shows where the model looked, not the outline of a lesion." in text
    pdf = tmp_path / "worklist.pdf"
    subprocess.run([*base, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000
    # A4 is 595.3 x 841.9 pt; Chromium rounds the page to whole CSS pixels (594.96 x 841.92)
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf.read_bytes())
    assert boxes and all(abs(float(w) - 595.3) < 1 and abs(float(h) - 841.9) < 1 for w, h in boxes), boxes
