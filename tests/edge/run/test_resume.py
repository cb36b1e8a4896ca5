"""Crash-safe, resumable classify: SIGKILL part-way, rerun, and compare with an uninterrupted run."""

import csv
import io
import os
import signal
import subprocess
import sys
import time

import pytest

from cxr_edge.run.journal import journal_path

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from cxr_edge.cli import main; main()"]


def _rows(path):
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture()
def big_stick(tmp_path, synth_small):
    """2,000 images (hard links to a few synthetic ones) plus a corrupt file: long enough to kill mid-run."""
    from PIL import Image

    stick = tmp_path / "stick"
    stick.mkdir()
    sources = []
    for i, name in enumerate(["Normal/images/Normal-1.png", "COVID/images/COVID-2.png",
                              "Lung_Opacity/images/Lung_Opacity-3.png", "Viral Pneumonia/images/Viral Pneumonia-4.png"]):
        src = tmp_path / f"src{i}.png"
        Image.open(synth_small / name).resize((160, 160)).save(src)
        sources.append(src)
    for i in range(2000):
        os.link(sources[i % 4], stick / f"img-{i:05d}.png")
    (stick / "img-00500-corrupt.png").write_bytes(sources[0].read_bytes()[:300])
    return stick


def test_sigkill_then_resume_gives_the_uninterrupted_report(big_stick, edge_bundle, tmp_path):
    report = tmp_path / "out" / "report.csv"
    report.parent.mkdir()
    args = [*CLI, "classify", str(big_stick), "--model", str(edge_bundle), "--output", str(report), "--format", "csv"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = journal_path(report)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") > 150:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = journal.read_text().count("\n") - 1  # minus the header line
    assert 150 <= done_before < 2001, "the run must be killed part-way"
    assert not report.exists()  # never a half-written report

    resumed = subprocess.run(args, capture_output=True, text=True)
    assert resumed.returncode == 1  # the corrupt file
    assert "resumed an interrupted run" in resumed.stderr
    assert not journal.exists()

    clean_report = tmp_path / "out" / "clean.csv"
    subprocess.run([*CLI, "classify", str(big_stick), "--model", str(edge_bundle), "--output", str(clean_report),
                    "--format", "csv"], capture_output=True, check=False)
    after_crash, clean = _rows(report), _rows(clean_report)
    assert len(after_crash) == 2001 and len({r["path"] for r in after_crash}) == 2001  # none lost, none twice
    assert after_crash == clean  # same rows, same labels, same probabilities, same order


def test_restart_discards_the_journal_and_a_foreign_journal_is_set_aside(big_stick, edge_bundle, tmp_path):
    from click.testing import CliRunner

    from cxr_edge.cli import main

    small = tmp_path / "small"
    small.mkdir()
    for p in sorted(big_stick.iterdir())[:5]:
        os.link(p, small / p.name)
    report = tmp_path / "r.csv"
    journal = journal_path(report)
    journal.write_text('{"journal": 1, "bundle": ["other"], "folder": "/elsewhere", "min_confidence": 0.6}\n'
                       '{"key": ["img-00000.png", 1, 1], "path": "img-00000.png", "label": "covid19", '
                       '"probs": [0, 0, 0, 1], "refer": false, "reason": "", "error": ""}\n')
    result = CliRunner().invoke(main, ["classify", str(small), "--model", str(edge_bundle), "--output", str(report)])
    assert result.exit_code == 0, result.output
    assert "set aside" in result.output and journal.with_name(journal.name + ".old").exists()
    assert len(_rows(report)) == 5 and not journal.exists()
    # a torn journal of this very run resumes; --restart ignores it
    result = CliRunner().invoke(main, ["classify", str(small), "--model", str(edge_bundle), "--output", str(report),
                                       "--restart"])
    assert result.exit_code == 0 and "resumed" not in result.output


def test_journal_ignores_a_torn_line_and_changed_images(tmp_path):
    from cxr_edge.run.result import Result
    from cxr_edge.run.journal import Journal, image_key

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"1234")
    (folder / "b.png").write_bytes(b"5678")
    identity = {"bundle": ["x"], "folder": str(folder), "min_confidence": 0.6}
    journal = Journal(tmp_path / "r.csv", identity)
    for name in ("a.png", "b.png"):
        journal.append(image_key(folder, name), Result(name, "normal", (1.0, 0.0, 0.0, 0.0)))
    journal.close()
    with open(journal.path, "a") as fh:
        fh.write('{"key": ["c.png", 3')  # the write a crash cut short
    (folder / "b.png").write_bytes(b"changed!")  # a different image under the same name
    again = Journal(tmp_path / "r.csv", identity)
    assert len(again.done) == 2 and not again.set_aside
    assert image_key(folder, "a.png") in again.done
    assert image_key(folder, "b.png") not in again.done  # size and mtime changed: classified again
    again.remove()
    assert not again.path.exists()
