"""The clinic node (`cxr-edge serve`) against real DICOM peers on loopback: dcmtk's echoscu and storescu play the
X-ray unit, on 127.0.0.1 and a port the test picks; every loop is bounded and stops by itself."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom import uid as uids

from cxr_edge.cli import main
from cxr_edge.node.config import ConfigError, load_config
from cxr_edge.node.state import DATABASE
from cxr_edge.run.result import Result
from cxr_train.synth_dicom import PATIENT, write_dicom

from tests.bundle_edits import edited_copy
from tests.node_harness import HOST, SYNTAXES, Node, _config, _free_port, _radiographs, _responses, _store
from tests.peers import tool

@pytest.fixture()
def node(tmp_path, edge_bundle):
    tool("storescu")
    port = _free_port()
    running = Node(_config(tmp_path, edge_bundle, port)).start()
    running.port = port
    yield running
    if running.process.poll() is None:
        running.stop(signal.SIGKILL)


# the configuration

def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message", [
    ('data = "/d"\n', "model: missing, and required"),
    ('model = "/m"\ndata = "/d"\ncolour = "red"\n', "colour: unknown key (the keys at the top are: candidate, data, dicom, "
                                                    "model, send, site, trusted_keys, usb, web)"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nport = "104"\nallowed_callers = ["*"]\n',
     "[dicom] port: a whole number expected, got '104'"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nport = true\nallowed_callers = ["*"]\n',
     "[dicom] port: a whole number expected, got True"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nae_tittle = "X"\n', "[dicom] ae_tittle: unknown key (the keys [dicom] are: "
                                                            "ae_title, allowed_callers, bind, enabled, min_free_mb, "
                                                            "port, study_stable_seconds)"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nport = 104\n',
     '[dicom] allowed_callers: missing, and required while [dicom] is enabled: the calling AE titles of your X-ray '
     'units, e.g. ["XRAYROOM1"], or ["*"] to accept any'),
    ('model = "/m"\ndata = "/d"\n[dicom]\nae_title = "A-NAME-LONGER-THAN-16"\nallowed_callers = ["*"]\n',
     "[dicom] ae_title: 1 to 16 ASCII characters, no backslash, got 'A-NAME-LONGER-THAN-16'"),
    ('model = "/m"\ndata = \n', "not valid TOML"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nallowed_callers = []\n',
     '[dicom] allowed_callers: empty, so no X-ray unit could send: name their calling AE titles, e.g. ["XRAYROOM1"], '
     'or ["*"] to accept any'),
    ('model = "/m"\ndata = "/d"\n[dicom]\nallowed_callers = ["A\\\\B"]\n', "[dicom] allowed_callers: a list of AE titles"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nallowed_callers = ["*"]\nbind = "clinic.local"\n',
     "[dicom] bind: an IP address of this box"),
    ('model = "/m"\ndata = "/d"\n[dicom]\nallowed_callers = ["*"]\nstudy_stable_seconds = nan\n',
     "[dicom] study_stable_seconds: a number of seconds, got nan"),
])
def test_a_configuration_error_names_the_key_and_the_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--check"])
    assert result.exit_code == 2 and message in result.output


def test_defaults_are_safe_and_relative_paths_follow_the_file(tmp_path):
    config = load_config(_write(tmp_path, 'model = "bundle"\ndata = "state"\n[dicom]\nallowed_callers = ["X1"]\n'))
    assert config.model == tmp_path / "bundle" and config.data == tmp_path / "state"
    assert config.dicom.bind == "127.0.0.1" and config.dicom.port == 11112 and config.dicom.ae_title == "CXREDGE"
    assert config.dicom.allowed_callers == ("X1",) and not config.dicom.any_caller and not config.usb.enabled


@pytest.mark.slow
def test_check_prints_the_configuration_and_the_self_test(tmp_path, edge_bundle):
    path = _config(tmp_path, edge_bundle, 11112, allowed_callers=["*"])
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert f"model: {edge_bundle}" in result.output
    assert 'dicom: CXREDGE on 127.0.0.1:11112; allowed callers: any (["*"]): every calling AE title is accepted' \
        in result.output
    assert "self-test: " in result.output and result.output.endswith("configuration usable\n")
    assert not (tmp_path / "data").exists()  # --check writes nothing


@pytest.mark.slow
def test_a_bundle_failing_its_self_test_stops_the_node(tmp_path, edge_bundle):
    from cxr_edge.bundle.files import SELFTEST_FILE
    from cxr_edge.bundle.load import load_bundle
    from cxr_edge.bundle.selftest import KnownAnswers

    answers = load_bundle(edge_bundle).known_answers()
    wrong = KnownAnswers(answers.inputs, {**answers.outputs, "stage2": [1.0 - answers.outputs["stage2"][0]]})
    bad = edited_copy(edge_bundle, tmp_path / "bad", files={SELFTEST_FILE: wrong.to_bytes()})
    path = _config(tmp_path, bad, _free_port())
    for args in ([], ["--check"]):
        result = CliRunner().invoke(main, ["serve", "--config", str(path), *args])
        assert result.exit_code == 2 and "self-test failed on every kernel set" in result.output


@pytest.mark.slow
def test_files_others_can_write_are_refused(tmp_path, edge_bundle):
    path = _config(tmp_path, edge_bundle, _free_port())
    path.chmod(0o666)
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--check"])
    assert result.exit_code == 2
    assert (f"configuration file {path} can be written by other users: whoever can change it decides what the box "
            f"runs; fix it with `chmod go-w {path}`") in result.output


@pytest.mark.slow
@pytest.mark.parametrize("what", ["database", "data folder"])
def test_a_node_that_cannot_write_its_database_or_data_folder_refuses_to_start(tmp_path, edge_bundle, what):
    from cxr_edge.node.state import State

    from tests.mounts import read_only

    path = _config(tmp_path, edge_bundle, _free_port())
    State(tmp_path / "data").close()
    target = tmp_path / "data" / DATABASE if what == "database" else tmp_path / "data"
    with read_only(target):
        node = subprocess.Popen([sys.executable, "-c", "from cxr_edge.cli import main; main()", "serve", "--config",
                                 str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = node.communicate(timeout=60)
        finally:
            node.kill()
    assert node.returncode == 2, output
    assert f"the {what} {target} cannot be written" in output and "readonly" in output.replace("-", "").lower()
    assert "listening" not in output


# receiving

@pytest.mark.slow
def test_every_syntax_is_received_and_labelled_as_classify_labels_it(node, tmp_path, synth_small):
    tool("echoscu")
    echo = subprocess.run([tool("echoscu"), "-aet", "XRAYROOM1", "-aec", "CXREDGE", HOST, str(node.port)],
                          capture_output=True, text=True, timeout=30)
    assert echo.returncode == 0, echo.stderr
    files = {}
    for syntax, flags in SYNTAXES.items():
        sent = _radiographs(tmp_path / "unit" / syntax.name.replace(" ", "_"), synth_small, 1, syntaxes=[syntax])
        result = _store(node.port, sent, *flags)
        assert result.returncode == 0, (syntax.name, result.stderr)
        files.update({str(p): p for p in sent})
    node.wait_classified(len(files))
    # the same files through `classify`: the same labels (the node stored them as received)
    stick = tmp_path / "stick"
    stick.mkdir()
    for i, path in enumerate(files.values()):
        shutil.copy(path, stick / f"{i:02d}.dcm")
    classified = json.loads(CliRunner().invoke(main, ["classify", str(stick), "--model",
                                                      str(load_config(node.config).model), "--format", "json"]).stdout)
    import pydicom

    by_uid = {pydicom.dcmread(stick / r["path"]).SOPInstanceUID: r for r in classified["results"]}
    results = json.loads(CliRunner().invoke(main, ["results", "--config", str(node.config), "--format",
                                                   "json"]).stdout)["results"]
    assert len(results) == len(SYNTAXES) == len(by_uid)
    for row in results:
        assert set(row) >= {"study_instance_uid", "sop_instance_uid", "received", "source", "path", "label",
                            "p_normal", "refer", "reason", "error"}
        assert row["source"] == "dicom:XRAYROOM1" and not row["error"]
        same = by_uid[row["sop_instance_uid"]]
        assert (row["label"], row["refer"], row["p_normal"]) == (same["label"], same["refer"], same["p_normal"])
    # the stored files are the service user's alone, and no patient name or ID reached the log
    data = node.config.parent / "data"
    assert (data.stat().st_mode & 0o777) == 0o700 and ((data / DATABASE).stat().st_mode & 0o777) == 0o600
    assert node.stop() == 0
    for value in (PATIENT["PatientName"], PATIENT["PatientID"], "Test"):
        assert value not in node.text()
    assert "stopped in" in node.text()
    # the bundle's warnings, in plain words, when the node starts (a synthetic bundle, signed by no trusted key)
    assert "WARNING: This model learned from made-up (synthetic) images" in node.text()
    assert "WARNING: Where this model came from is not verified" in node.text()


@pytest.mark.slow
def test_unknown_callers_corrupt_datasets_duplicates_and_non_images(node, tmp_path, synth_small):
    good = _radiographs(tmp_path / "unit", synth_small, 2)
    refused = _store(node.port, good[:1], caller="SOMEONE")
    assert refused.returncode != 0 and "Calling AE Title Not Recognized" in refused.stderr
    assert "association rejected: calling AE title SOMEONE is not in allowed_callers" in node.text()
    # a dataset without its Study Instance UID, between two good ones in one association
    broken = write_dicom(tmp_path / "unit" / "broken.dcm", np.zeros((64, 64), np.uint16),
                         SeriesInstanceUID=uids.generate_uid())
    result = _store(node.port, [good[0], broken, good[1]])
    assert _responses(result) == ["Success", "Error: CannotUnderstand", "Success"], result.stderr
    assert "the dataset cannot be parsed" in node.text()
    node.wait_classified(2)
    # the same instance again: stored and classified once
    assert _responses(_store(node.port, good)) == ["Success", "Success"]
    time.sleep(1)
    assert len(node.rows()) == 2 and "duplicate" in node.text()
    # an object that is not an image: refused with a status, not stored
    from pydicom.data import get_testdata_file

    report = _store(node.port, [get_testdata_file("rtplan.dcm")])
    assert _responses(report) == ["Refused: SOPClassNotSupported"], report.stderr
    assert len(node.rows()) == 2 and "is not an image the box reads" in node.text()
    assert node.stop() == 0


@pytest.mark.slow
def test_below_the_free_space_watermark_images_are_refused_then_accepted(tmp_path, edge_bundle, synth_small,
                                                                         monkeypatch):
    """The node in this process, with the disk's free space under the test's control."""
    import cxr_edge.node.receiver as receiver
    from cxr_edge.node.serve import run

    tool("storescu")
    port = _free_port()
    config = load_config(_config(tmp_path, edge_bundle, port, min_free_mb=100))
    free = {"mb": 50}
    real = shutil.disk_usage
    monkeypatch.setattr(receiver.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=free["mb"] * 2**20))
    lines = []
    monkeypatch.setattr("cxr_edge.node.serve.log", lines.append)
    stop = threading.Event()
    serving = threading.Thread(target=run, args=(config, stop))
    serving.start()
    try:
        deadline = time.monotonic() + 60
        while not any("listening as" in line for line in lines):
            assert time.monotonic() < deadline and serving.is_alive(), lines
            time.sleep(0.1)
        files = _radiographs(tmp_path / "unit", synth_small, 2)
        full = _store(port, files[:1])
        assert _responses(full) == ["Refused: OutOfResources"], full.stderr
        assert any("is below min_free_mb 100: new images are refused (out of resources)" in line for line in lines)
        free["mb"] = 500
        assert _responses(_store(port, files)) == ["Success", "Success"]
        assert any("is back above min_free_mb 100: accepting images again" in line for line in lines)
        assert sum(line.startswith("stored ") for line in lines) == 2
    finally:
        stop.set()
        serving.join(timeout=20)
    assert not serving.is_alive()


@pytest.mark.slow
def test_killed_mid_burst_every_acknowledged_image_is_classified_exactly_once(node, tmp_path, synth_small):
    files = _radiographs(tmp_path / "unit", synth_small, 20)
    sending = subprocess.Popen([tool("storescu"), "-aet", "XRAYROOM1", "-aec", "CXREDGE", HOST, str(node.port),
                                *map(str, files)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(node.rows()) < 5:
        assert time.monotonic() < deadline, node.text()
        time.sleep(0.05)
    node.stop(signal.SIGKILL)
    _, stderr = sending.communicate(timeout=60)
    # the unit sends again what it has no success status for; here it sends everything again
    node.start()
    assert _store(node.port, files).returncode == 0
    node.wait_classified(len(files))
    rows = node.rows()
    assert len(rows) == len({uid for uid, _ in rows}) == len(files)  # none lost, none twice
    results = json.loads(CliRunner().invoke(main, ["results", "--config", str(node.config), "--format",
                                                   "json"]).stdout)["results"]
    assert len(results) == len(files)
    started = time.monotonic()
    assert node.stop() == 0 and time.monotonic() - started < 10  # SIGTERM: a clean stop within 10 s


@pytest.mark.slow
def test_a_stick_appears_is_classified_goes_away_mid_run_and_comes_back(tmp_path, edge_bundle, synth_small):
    """A folder below `watch` stands in for a mounted stick (mount_points_only = false)."""
    port = _free_port()
    media = tmp_path / "media"
    media.mkdir()
    config = _config(tmp_path, edge_bundle, port)
    config.write_text(config.read_text() + f'[usb]\nenabled = true\nwatch = "{media}"\nmount_points_only = false\n')
    node = Node(config).start()
    try:
        staging = tmp_path / "staging" / "CLINIC_DAY"
        staging.mkdir(parents=True)
        names = sorted(synth_small.glob("*/images/*.png"))
        for i in range(120):  # enough that the run is still going when the stick is pulled
            Image.open(names[i % len(names)]).resize((300, 300)).save(staging / f"img-{i:03d}.png")
        (staging / "notes.txt").write_text("not an image")
        before = {p.name: p.stat().st_mtime_ns for p in staging.iterdir()}
        stick = media / "CLINIC_DAY"

        def insert():  # whole at once, as a mount appears
            shutil.copytree(staging, tmp_path / "copy")
            (tmp_path / "copy").rename(stick)

        insert()
        journal = next((tmp_path / "data" / "reports").glob("CLINIC_DAY-*.html.journal"), None) \
            if _wait(lambda: any((tmp_path / "data" / "reports").glob("CLINIC_DAY-*.html.journal"))) else None
        assert journal is not None, node.text()
        assert _wait(lambda: len(journal.read_text().splitlines()) > 5), node.text()
        shutil.rmtree(stick)  # pulled mid-run
        assert _wait(lambda: "stopped, the stick went away" in node.text()), node.text()
        kept = len(journal.read_text().splitlines()) - 1
        assert 0 < kept < 120
        assert not any("cannot be read" in line for line in journal.read_text().splitlines()[1:])
        insert()  # back again: the run resumes
        assert _wait(lambda: "stick CLINIC_DAY: 120 images" in node.text(), 120), node.text()
        assert f"stick CLINIC_DAY: resumed, {kept} image(s) taken from the run's journal" in node.text()
        reports = sorted(p.name for p in (tmp_path / "data" / "reports").iterdir() if p.suffix in (".csv", ".html"))
        assert [Path(name).suffix for name in reports] == [".csv", ".html"]
        assert "skipped 1 file not classified (not an image 1)" in node.text()
        assert {p.name: p.stat().st_mtime_ns for p in stick.iterdir()} == before  # nothing written to the stick
        rows = json.loads(CliRunner().invoke(main, ["results", "--config", str(config), "--format",
                                                    "json"]).stdout)["results"]
        assert len(rows) == 120 and {r["source"] for r in rows} == {"usb:CLINIC_DAY"}
        assert all(r["sop_instance_uid"] is None and r["label"] for r in rows)
    finally:
        assert node.stop() == 0


def _wait(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_a_trust_folder_others_can_write_is_refused_by_the_node_and_warned_about_by_classify(
        tmp_path, edge_bundle, usb_stick, monkeypatch):
    trust = tmp_path / "trusted-keys"
    trust.mkdir()
    trust.chmod(0o777)
    monkeypatch.setenv("CXR_EDGE_TRUSTED_KEYS", str(trust))
    path = _config(tmp_path, edge_bundle, _free_port())
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--check"])
    assert result.exit_code == 2 and f"trust folder {trust} can be written by other users" in result.output
    classified = CliRunner().invoke(main, ["classify", str(usb_stick / "ward-2"), "--model", str(edge_bundle),
                                           "--format", "json"])
    assert classified.exit_code == 0, classified.output
    warning = (f"WARNING: the trust folder {trust} can be written by other users: whoever can add a key there "
               f"decides what this box runs; fix it with `chmod go-w {trust}`.")
    assert warning in json.loads(classified.stdout)["warnings"]


@pytest.mark.slow
def test_sigterm_with_an_association_left_open_stops_within_10_seconds(node):
    """A unit that opens an association and never releases it does not keep the node running past 10 s."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    unit = AE(ae_title="XRAYROOM1")
    unit.add_requested_context(Verification)
    association = unit.associate(HOST, node.port, ae_title="CXREDGE")
    assert association.is_established
    started = time.monotonic()
    try:
        assert node.stop() == 0 and time.monotonic() - started < 10
    finally:
        association.abort()


def test_results_csv_neutralises_formula_like_stick_file_names(tmp_path):
    """A stick's file names are whoever made the stick's: `cxr-edge results --format csv` writes them as the
    report CSVs do (a leading apostrophe), JSON as they are."""
    from cxr_edge.node.state import State

    config = _write(tmp_path, f'model = "bundle"\ndata = "{tmp_path / "data"}"\n[dicom]\nenabled = false\n')
    state = State(tmp_path / "data")
    run = state.start_stick_run("STICK", "/media/STICK", "reports/STICK.html")
    name = '=HYPERLINK("example.invalid","click").png'
    state.finish_stick_run(run, "finished", [Result(name, "normal", (0.9, 0.04, 0.03, 0.03))])
    state.close()
    import csv

    csv_out = CliRunner().invoke(main, ["results", "--config", str(config), "--format", "csv"]).output
    [row] = csv.DictReader(line for line in csv_out.splitlines() if not line.startswith("#"))
    assert row["path"] == "'" + name and row["refer"] == "false" and row["sop_instance_uid"] == ""
    rows = json.loads(CliRunner().invoke(main, ["results", "--config", str(config), "--format", "json"]).output)
    assert rows["results"][0]["path"] == name and rows["results"][0]["source"] == "usb:STICK"


def test_a_flood_of_idle_connections_leaves_the_unit_its_echo(node):
    """Twelve connections from one machine that never ask for an association (pynetdicom allowed 10 at once): the
    node closes those over its per-address limit at once and the rest after its ACSE timeout; the unit, from
    another address, is answered throughout."""
    import socket

    from cxr_edge.node.receiver import ACSE_SECONDS, PER_ADDRESS

    flood = []
    for _ in range(12):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))  # another machine on the network, as loopback lets a test be one
        s.connect((HOST, node.port))
        flood.append(s)
    try:
        time.sleep(0.5)
        echo = subprocess.run([tool("echoscu"), "-aet", "XRAYROOM1", "-aec", "CXREDGE", HOST, str(node.port)],
                              capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
        deadline = time.monotonic() + ACSE_SECONDS + 10
        open_ones = flood
        while open_ones and time.monotonic() < deadline:  # every idle connection closed by the node, in time
            time.sleep(0.5)
            open_ones = [s for s in open_ones if _still_open(s)]
        assert not open_ones
        assert f"connections from 127.0.0.2 over {PER_ADDRESS} at once" in node.text()
    finally:
        for s in flood:
            s.close()


def _still_open(s) -> bool:
    """Whether the node has not closed this connection yet (nothing was ever sent on it)."""
    import socket

    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_an_association_for_another_ae_title_is_rejected(node):
    echo = subprocess.run([tool("echoscu"), "-aet", "XRAYROOM1", "-aec", "SOMEBOX", HOST, str(node.port)],
                          capture_output=True, text=True, timeout=30)
    assert echo.returncode != 0 and "Called AE Title Not Recognized" in echo.stderr + echo.stdout


def test_a_uid_with_a_newline_makes_one_log_line(tmp_path):
    from types import SimpleNamespace

    from cxr_edge.node.config import DicomConfig
    from cxr_edge.node.receiver import Receiver
    from cxr_edge.node.state import State

    log = []
    receiver = Receiver(DicomConfig(allowed_callers=("UNIT",), min_free_mb=1), State(tmp_path / "data"), log.append)
    event = SimpleNamespace(assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="UNIT\nforged", address="x")),
                            request=SimpleNamespace(AffectedSOPClassUID="1.2.3\nINFO: forged line",
                                                    AffectedSOPInstanceUID="1.2\n3"))
    assert receiver.handle_store(event) != 0  # not an image class: refused, and said so in one line
    receiver.state.close()
    assert len(log) == 1 and "\n" not in log[0] and "\\x0a" in log[0]


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_decompression_bombs_are_refused_unstored_and_cost_the_node_under_50_mb(node, tmp_path, synth_small):
    """A 0.5 MB deflated DX that inflates to 512 MB (16384 x 16384 pixels) and a 1.5 kB RLE image claiming
    65535 x 65535, sent by storescu: refused with a failure status, never stored, logged once each; the node's peak
    memory (VmHWM, reset first) grows less than 50 MB; a radiograph after them is classified as usual."""
    from tests.bombs import deflated_bomb, rle_bomb

    deflated, rle = deflated_bomb(tmp_path / "deflated.dcm"), rle_bomb(tmp_path / "rle.dcm")
    pid = node.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak resident size starts again from now
    before = _memory_kb(pid, "VmRSS")
    sent = _store(node.port, [deflated], "-xd")
    sent_rle = _store(node.port, [rle], "-xr")
    grown_mb = (_memory_kb(pid, "VmHWM") - before) / 1024
    print(f"the node's peak memory grew {grown_mb:.1f} MB receiving both bombs")
    assert _responses(sent) == ["Refused: OutOfResources"], sent.stderr
    assert _responses(sent_rle) == ["Refused: OutOfResources"], sent_rle.stderr
    assert grown_mb < 50, f"the node grew {grown_mb:.0f} MB receiving two bombs"
    log = node.text()
    assert log.count("too large once inflated") == 1 and log.count("65535 x 65535 pixels") == 1, log
    assert not list((node.config.parent / "data" / "images").rglob("*.dcm"))  # nothing stored
    files = _radiographs(tmp_path / "unit", synth_small, 1)
    assert _store(node.port, files).returncode == 0
    node.wait_classified(1)


def test_trusted_keys_in_the_configuration_is_the_node_s_trust_folder(tmp_path, edge_bundle):
    """`trusted_keys = PATH` in node.toml, as $CXR_EDGE_TRUSTED_KEYS: serve --check names it, and a trust folder there
    that others can write is refused as the default's would be."""
    keys = tmp_path / "keys"
    keys.mkdir()
    config = _config(tmp_path, edge_bundle, _free_port())
    config.write_text(f'trusted_keys = "{keys}"\n' + config.read_text())
    checked = CliRunner().invoke(main, ["serve", "--config", str(config), "--check"])
    assert checked.exit_code == 0 and f"trusted keys: {keys}" in checked.output, checked.output
    keys.chmod(0o777)
    refused = CliRunner().invoke(main, ["serve", "--config", str(config), "--check"])
    assert refused.exit_code == 2 and str(keys) in refused.output, refused.output


def test_serve_help_names_every_section_of_the_configuration():
    shown = CliRunner().invoke(main, ["serve", "--help"])
    assert all(section in shown.output for section in ("[dicom]", "[usb]", "[send]", "[web]", "trusted_keys"))


def test_log_lines_are_whole_and_time_stamped_outside_journald(node, tmp_path, synth_small):
    import re

    assert _store(node.port, _radiographs(tmp_path / "unit", synth_small, 3)).returncode == 0
    node.wait_classified(3)
    lines = node.text().splitlines()
    stamped = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d cxr-edge serve: \S")
    assert lines and all(stamped.match(line) for line in lines), lines[:5]
    assert any(re.search(r"bundle \S+ \(made \d{4}-\d\d-\d\dT.* by cxr-edge \d", line) for line in lines)


def _store_event(path: Path, caller: str = "UNIT"):
    """What pynetdicom hands the C-STORE handler, for a file: the request's UIDs and the dataset's bytes."""
    from types import SimpleNamespace

    import pydicom

    ds = pydicom.dcmread(path)
    data = path.read_bytes()
    return SimpleNamespace(assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title=caller, address="x")),
                           request=SimpleNamespace(AffectedSOPClassUID=str(ds.SOPClassUID),
                                                   AffectedSOPInstanceUID=str(ds.SOPInstanceUID)),
                           encoded_dataset=lambda: data)


def test_storage_trouble_is_answered_as_the_box_s_not_as_bad_data_and_logged(tmp_path, synth_small, monkeypatch):
    """A full disk while writing a received image: Out of Resources (0xA700; the unit keeps it and sends it
    again), not "cannot understand"; a database error while recording it: Processing failure (0x0110). Each said in
    one log line; nothing recorded; the next image stored as usual."""
    import errno
    import sqlite3

    from cxr_edge.node import receiver as receiving
    from cxr_edge.node.config import DicomConfig
    from cxr_edge.node.receiver import OUT_OF_RESOURCES, PROCESSING_FAILURE, SUCCESS, Receiver
    from cxr_edge.node.state import State

    first, second, third = _radiographs(tmp_path / "unit", synth_small, 3)
    log = []
    state = State(tmp_path / "data")
    receiver = Receiver(DicomConfig(allowed_callers=("UNIT",), min_free_mb=1), state, log.append)
    real_write = receiving.write_durably

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(receiving, "write_durably", full)
    assert receiver.handle_store(_store_event(first)) == OUT_OF_RESOURCES
    monkeypatch.setattr(receiving, "write_durably", real_write)
    monkeypatch.setattr(state, "add_instance", lambda *a: (_ for _ in ()).throw(sqlite3.OperationalError(
        "database is locked")))
    assert receiver.handle_store(_store_event(second)) == PROCESSING_FAILURE
    monkeypatch.undo()
    assert receiver.handle_store(_store_event(third)) == SUCCESS
    state.close()
    assert "No space left on device): out of resources" in log[0] and "database is locked" in log[1]
    assert len(log) == 3 and not any("\n" in line for line in log)


def test_a_failed_commit_is_reported_as_itself(tmp_path):
    """After a COMMIT that fails (a full disk), SQLite has rolled back already: the error raised is the COMMIT's,
    never "cannot rollback - no transaction is active"."""
    import sqlite3

    from cxr_edge.node.state import State

    state = State(tmp_path / "data")

    class FullDisk:
        """The connection, but for a COMMIT that fails as SQLite's does on a full disk (rolled back already)."""

        def __init__(self, db):
            self.db = db

        @property
        def in_transaction(self):
            return self.db.in_transaction

        def execute(self, sql, *args):
            if sql == "COMMIT":
                self.db.execute("ROLLBACK")
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

    real = state._db
    state._db = FullDisk(real)
    try:
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            with state.transaction() as db:
                db.execute("INSERT INTO events (time, kind, detail) VALUES (1, 'x', 'y')")
    finally:
        state._db = real
    assert not real.in_transaction  # and the next writer finds no transaction open
    state.close()


def test_a_database_locked_for_a_while_pauses_classifying_and_never_becomes_the_image_s_result(tmp_path, edge_bundle,
                                                                                           synth_small, monkeypatch):
    """Another process holding the database past SQLite's 5 s busy timeout as the worker records a result: the image
    stays pending, the worker pauses (one log line), resumes, and the image gets its label, not "could not be
    classified (OperationalError: database is locked)"."""
    import sqlite3

    from cxr_edge.bundle.load import load_bundle
    from cxr_edge.node import worker as working
    from cxr_edge.node.state import Instance, State, StudyHeader
    from cxr_edge.node.worker import Worker
    from cxr_edge.run.classify import Classifier

    monkeypatch.setattr(working, "PAUSE_SECONDS", 0.05, raising=False)  # (no such wait before)
    state = State(tmp_path / "data")
    [path] = _radiographs(tmp_path / "data" / "images", synth_small, 1)
    state.add_instance(Instance("1.2.3", "1.2.840.10008.5.1.4.1.1.1.1", "2.3", "2.3.1", "dicom:UNIT",
                                str(path.relative_to(tmp_path / "data")), time.time()), StudyHeader("P"))
    real, refusals = state.record_result, [1]  # released before the error row would be written

    def locked_once(*args, **kwargs):
        if refusals[0]:
            refusals[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(state, "record_result", locked_once)
    log = []
    worker = Worker(Classifier(load_bundle(edge_bundle)), state, 0, log.append)
    worker.start()
    deadline = time.monotonic() + 30
    while state.instance_results()[0]["classified"] is None:
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    worker.stop()
    worker.join(10)
    [row] = state.instance_results()
    state.close()
    assert row["label"] in ("normal", "lung_opacity", "viral_pneumonia", "covid19"), row  # not an error row
    assert sum("classifying paused" in line for line in log) == 1 and any("resumed" in line for line in log), log


def test_log_lines_from_many_threads_and_pynetdicom_s_warnings_are_whole_stamped_lines():
    """Eight threads logging at once into one pipe, as a busy node's receiver, worker and sender do, and a warning
    of pynetdicom's: every line whole, stamped and prefixed; pynetdicom's INFO chatter left out."""
    import re

    script = """
import logging, threading
from cxr_edge.node.serve import log, route_library_logs
route_library_logs()
def many(n):
    for i in range(400):
        log(f"thread {n} line {i} " + "x" * (n * 37))
threads = [threading.Thread(target=many, args=(n,)) for n in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
logging.getLogger("pynetdicom.assoc").warning("peer aborted the association")
logging.getLogger("pynetdicom.assoc").info("chatter")
"""
    environment = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=environment)
    lines = done.stderr.splitlines()
    whole = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d cxr-edge serve: (thread (\d) line \d+ (x*)|"
                       r"pynetdicom.assoc: peer aborted the association)$")
    assert len(lines) == 8 * 400 + 1, done.stderr[-2000:]
    for line in lines:
        match = whole.match(line)
        assert match and (not match.group(2) or len(match.group(3)) == int(match.group(2)) * 37), line
    assert "chatter" not in done.stderr
