"""The node sends its results into the record, against real peers on loopback: Debian's Orthanc is the clinic's
PACS (its own configuration and storage, 127.0.0.1 ports the test picks, and it accepts stores only from the node's
and the unit's AE titles at 127.0.0.1), dcmtk's storescu the X-ray unit, and a small FHIR endpoint in the test
that records what it is sent. Peers go down and come back; every loop is bounded and stops by itself."""

import json
import signal
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cxr_edge.node.config import ConfigError, load_config

from tests.peers import tool
from tests.node_harness import HOST, Node, _config, _free_port, _radiographs, _responses, _store

pytestmark = pytest.mark.slow


class Orthanc:
    """Orthanc in its own process, with its own configuration and storage under `folder`."""

    def __init__(self, folder, allowed: dict[str, int]):
        self.folder, self.dicom_port, self.http_port = folder, _free_port(), _free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {"Name": "cxr-edge-test", "StorageDirectory": str(folder / "storage"),
                  "IndexDirectory": str(folder / "storage"), "DicomAet": "ORTHANC", "DicomPort": self.dicom_port,
                  "HttpPort": self.http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                  # Orthanc 1.10 cannot bind to one address: it takes stores only from these AEs on 127.0.0.1
                  "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomCheckModalityHost": True,
                  "DicomModalities": {ae.lower(): {"AET": ae, "Host": HOST, "Port": port, "AllowStore": True}
                                      for ae, port in allowed.items()},
                  "Plugins": [], "SaveJobs": False, "StableAge": 1, "DicomThreadsCount": 2, "HttpThreadsCount": 4}
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps(config))
        self.process = None

    def start(self) -> "Orthanc":
        self.process = subprocess.Popen([tool("Orthanc"), str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.folder / "orthanc.log", "a"))
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, (self.folder / "orthanc.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Orthanc did not start in 60 s"
            try:
                self.rest("/system")
                return self
            except OSError:
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def rest(self, path: str):
        with urllib.request.urlopen(f"http://{HOST}:{self.http_port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def study(self, study_uid: str) -> dict[tuple[str, str], list[str]]:
        """(modality, series description) -> SOP Instance UIDs, of the study Orthanc holds under `study_uid`."""
        found = [s for s in self.rest("/studies?expand") if s["MainDicomTags"]["StudyInstanceUID"] == study_uid]
        assert len(found) <= 1
        series = {}
        for series_id in found[0]["Series"] if found else []:
            info = self.rest(f"/series/{series_id}")
            uids = [self.rest(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in info["Instances"]]
            tags = info["MainDicomTags"]
            series[(tags.get("Modality", ""), tags.get("SeriesDescription", ""))] = sorted(uids)
        return series


class FhirEndpoint:
    """A FHIR server's transaction endpoint that records every POST, answers 200 with a transaction-response, or
    `status` when set; `start()` again after `stop()` comes back on the same port."""

    def __init__(self, delay: float = 0.0):
        self.port, self.posts, self.status, self.server = _free_port(), [], None, None
        self.url = f"http://{HOST}:{self.port}/fhir"
        self.delay = delay  # seconds a transaction takes, as on a busy server

    def start(self) -> "FhirEndpoint":
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.posts.append((self.path, dict(self.headers), body))
                time.sleep(endpoint.delay)
                status = endpoint.status or 200
                reply = {"resourceType": "Bundle", "type": "transaction-response"} if status == 200 else {
                    "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
                                                                   "diagnostics": "Patient PID-0042 unknown"}]}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer((HOST, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bundles(self) -> list[str]:
        return [body["identifier"]["value"] for _, _, body in self.posts]


def _send_config(tmp_path, bundle, node_port, orthanc, fhir, min_free_mb=1, **send):
    path = _config(tmp_path, bundle, node_port, allowed_callers=["XRAYROOM1"], study_stable_seconds=1,
                   min_free_mb=min_free_mb)
    settings = {"dicom": [f"ORTHANC@{HOST}:{orthanc.dicom_port}"], "fhir_url": fhir.url,
                "fhir_token_env": "CXR_EDGE_FHIR_TOKEN", "retry_first_seconds": 0.5, "retry_max_seconds": 2, **send}
    with path.open("a") as fh:
        fh.write("[send]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return path


def _outbox(config) -> dict[tuple[str, str], dict]:
    from cxr_edge.node.state import State

    state = State(load_config(config).data)
    try:
        return {(i["destination"].split(":")[0], i["object_uid"]): i for i in state.outbox_items()}
    finally:
        state.close()


def _wait(condition, seconds: float, what: str, node: Node | None = None):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {seconds} s\n{node.text()[-3000:] if node else ''}"
        time.sleep(0.25)


def test_results_reach_the_pacs_and_the_ehr_once_through_outages_and_a_restart(tmp_path, edge_bundle, synth_small,
                                                                              monkeypatch):
    from fhir.resources.R4B.bundle import Bundle

    monkeypatch.setenv("CXR_EDGE_FHIR_TOKEN", "secret-token-1")
    node_port = _free_port()
    orthanc = Orthanc(tmp_path / "orthanc", {"CXREDGE": node_port, "XRAYROOM1": _free_port()}).start()
    fhir = FhirEndpoint()  # down at first: nothing listens on its port
    node = Node(_send_config(tmp_path, edge_bundle, node_port, orthanc, fhir))
    node.port = node_port
    try:
        node.start()
        first = _radiographs(tmp_path / "unit1", synth_small, 2, study="1.2.826.0.1.3680043.8.498.1001")
        for port, aet in ((orthanc.dicom_port, "ORTHANC"), (node_port, "CXREDGE")):
            sent = subprocess.run([tool("storescu"), "-aet", "XRAYROOM1", "-aec", aet, HOST, str(port),
                                   *map(str, first)], capture_output=True, text=True, timeout=120)
            assert sent.returncode == 0, sent.stderr
        # the PACS has the study: the unit's series, the node's SR series and its heatmap series, each image once
        _wait(lambda: sum(i["state"] == "sent" for (kind, _), i in _outbox(node.config).items() if kind == "dicom")
              == 4, 120, "2 SRs and 2 heatmaps sent", node)
        held = orthanc.study("1.2.826.0.1.3680043.8.498.1001")
        assert len(held) == 3 and ("SR", "cxr-edge AI pre-diagnosis") in held, held
        assert [len(uids) for uids in held.values()] == [2, 2, 2], held
        # the EHR was down: its Bundle waits, with the reason, and arrives once it is back
        _wait(lambda: any(i["last_error"] for (k, _), i in _outbox(node.config).items() if k == "fhir"), 60,
              "a failed FHIR attempt", node)
        fhir.start()
        _wait(lambda: len(fhir.posts) == 1, 60, "the FHIR Bundle", node)
        path, headers, body = fhir.posts[0]
        assert path == "/fhir" and headers["Authorization"] == "Bearer secret-token-1"
        Bundle.model_validate(body)
        assert sum(e["resource"]["resourceType"] == "DiagnosticReport" for e in body["entry"]) == 2

        # the PACS goes down while results are made; the node restarts meanwhile: all arrive, once
        orthanc.stop()
        second = _radiographs(tmp_path / "unit2", synth_small, 3, study="1.2.826.0.1.3680043.8.498.1002")
        assert _store(node_port, second).returncode == 0
        _wait(lambda: sum(i["state"] == "queued" and i["attempts"] > 0
                          for (k, _), i in _outbox(node.config).items() if k == "dicom") >= 1, 120,
              "a failed attempt while the PACS is down", node)
        queued = [i for (k, _), i in _outbox(node.config).items() if k == "dicom" and i["state"] == "queued"]
        assert all("association" in i["last_error"] or not i["last_error"] for i in queued)
        assert node.stop() == 0
        node.start()
        orthanc.start()
        _wait(lambda: all(i["state"] == "sent" for i in _outbox(node.config).values()) and
              len(_outbox(node.config)) == 10 + 2, 120, "every object sent", node)
        held = orthanc.study("1.2.826.0.1.3680043.8.498.1002")
        assert len(held) == 2 and all(description == "cxr-edge AI pre-diagnosis" for _, description in held), held
        assert [len(uids) for uids in held.values()] == [3, 3], held
        _wait(lambda: len(fhir.posts) == 2, 60, "the second study's Bundle", node)
        assert len(set(fhir.bundles())) == 2  # each Bundle posted once
        log = node.text()
        sent_lines = [line for line in log.splitlines() if "cxr-edge serve: sent " in line]
        assert len(sent_lines) == len(set(sent_lines)) == 12  # each object acknowledged once, never sent again
        for secret in ("Test^Patient", "PID-0042", "secret-token-1"):
            assert secret not in log
        # the outbox's files go once every destination has them
        assert not list((load_config(node.config).data / "outbox").iterdir())
    finally:
        for stop in (node.stop if node.process and node.process.poll() is None else None,
                     orthanc.stop if orthanc.process.poll() is None else None,
                     fhir.stop if fhir.server else None):
            if stop:
                stop()


def test_a_bundle_the_ehr_refuses_is_kept_as_failed_and_not_retried(tmp_path, edge_bundle, synth_small,
                                                                    monkeypatch):
    from click.testing import CliRunner

    from cxr_edge.cli import main

    monkeypatch.setenv("CXR_EDGE_FHIR_TOKEN", "t")
    fhir = FhirEndpoint().start()
    fhir.status = 400
    node_port = _free_port()
    config = _config(tmp_path, edge_bundle, node_port)
    with config.open("a") as fh:
        fh.write(f'[send]\nfhir_url = "{fhir.url}"\nretry_first_seconds = 0.2\nretry_max_seconds = 1\n')
    node = Node(config)
    try:
        node.start()
        images = _radiographs(tmp_path / "unit", synth_small, 1)
        assert _store(node_port, images).returncode == 0
        _wait(lambda: any(i["state"] == "failed" for i in _outbox(config).values()), 60, "a failed Bundle", node)
        time.sleep(3)  # several backoff periods: a refused Bundle is not posted again
        assert len(fhir.posts) == 1
        [item] = _outbox(config).values()
        assert item["state"] == "failed" and item["last_error"].startswith("HTTP 400")
        assert "PID-0042" not in node.text()  # the peer's own words stay in the database, out of the log
        shown = CliRunner().invoke(main, ["results", "--config", str(config)])
        assert f"outbox fhir:{fhir.url}: 0 queued, 0 sent, 1 failed; last error: HTTP 400" in shown.stdout
        listed = json.loads(CliRunner().invoke(main, ["results", "--config", str(config), "--outbox", "--format",
                                                      "json"]).stdout)["outbox"]
        assert [(i["kind"], i["state"]) for i in listed] == [("fhir", "failed")]
        # its own heatmap routed back by a PACS: answered success, never stored or classified
        made = CliRunner().invoke(main, ["classify", str(tmp_path / "unit"), "--model", str(edge_bundle), "--sr",
                                         str(tmp_path / "made")])
        assert made.exit_code == 0, made.output
        back = _store(node_port, [tmp_path / "made" / "000.dcm.heatmap.dcm"])
        assert back.returncode == 0 and "Success" in back.stderr, back.stderr
        assert "a cxr-edge result (its heatmap), not a radiograph" in node.text()
        assert len(node.rows()) == 1
    finally:
        if node.process and node.process.poll() is None:
            node.stop()
        fhir.stop()


@pytest.mark.parametrize("send,message", [
    ('dicom = ["PACS192.168.1.10:104"]', "[send] dicom: each destination is AE_TITLE@HOST:PORT"),
    ('dicom = ["PACS@host:0"]', "the port in 'PACS@host:0' must be 1 to 65535"),
    ('dicom = ["A_TITLE_LONGER_THAN_16@h:104"]', "is not an AE title"),
    ('fhir_url = "ehr.example/fhir"', "[send] fhir_url: the FHIR server's base URL"),
    ('fhir_token_env = "Bearer abc.def"', "the NAME of an environment variable"),
    ("retry_max_seconds = 0", "[send] retry_max_seconds: a positive number of seconds"),
])
def test_send_configuration_errors_name_the_key(tmp_path, send, message):
    path = tmp_path / "node.toml"
    path.write_text(f'model = "m"\ndata = "d"\n[dicom]\nallowed_callers = ["*"]\n[send]\n{send}\n')
    with pytest.raises(ConfigError, match=None) as raised:
        load_config(path)
    assert message in str(raised.value)


def test_a_missing_token_stops_the_node_with_what_to_set(tmp_path, edge_bundle, monkeypatch):
    from click.testing import CliRunner

    from cxr_edge.cli import main

    monkeypatch.delenv("CXR_EDGE_FHIR_TOKEN", raising=False)
    config = _config(tmp_path, edge_bundle, _free_port())
    with config.open("a") as fh:
        fh.write('[send]\nfhir_url = "https://ehr.example/fhir"\nfhir_token_env = "CXR_EDGE_FHIR_TOKEN"\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--check"])
    assert result.exit_code == 2
    assert "fhir_token_env names CXR_EDGE_FHIR_TOKEN, which is not set in the environment" in result.output


def test_a_slow_fhir_server_gets_each_bundle_once(tmp_path, edge_bundle, synth_small, monkeypatch):
    """A server taking 8 s over a transaction: the node waits for its answer and never posts the Bundle again while
    the first copy is in progress (with a 5 s timeout it posted again, and again)."""
    monkeypatch.setenv("CXR_EDGE_FHIR_TOKEN", "secret-token-1")
    fhir = FhirEndpoint(delay=8).start()
    node_port = _free_port()
    path = _config(tmp_path, edge_bundle, node_port, allowed_callers=["XRAYROOM1"], study_stable_seconds=1)
    with path.open("a") as fh:
        fh.write(f'[send]\nfhir_url = "{fhir.url}"\nfhir_token_env = "CXR_EDGE_FHIR_TOKEN"\n'
                 "retry_first_seconds = 0.5\nretry_max_seconds = 2\n")
    node = Node(path)
    node.port = node_port
    try:
        node.start()
        sent = _store(node_port, _radiographs(tmp_path / "unit", synth_small, 1))
        assert sent.returncode == 0, sent.stderr
        _wait(lambda: any(i["state"] == "sent" for (k, _), i in _outbox(node.config).items() if k == "fhir"), 60,
              "the Bundle sent", node)
        time.sleep(3)  # a re-post would come within the retry's 0.5 to 2 s
        assert len(fhir.posts) == 1, [p[0] for p in fhir.posts]
    finally:
        node.stop()
        fhir.stop()


@pytest.mark.parametrize("min_free_mb", [0, 2], ids=["disk-full", "below-watermark"])
def test_a_full_disk_as_images_arrive_and_a_study_becomes_final_loses_no_record(tmp_path, edge_bundle, synth_small,
                                                                               monkeypatch, min_free_mb):
    """The data folder on a 24 MB file system, filled while images arrive and while their study becomes final,
    then freed: every image the unit was told was stored ends with its result, its SR and heatmap in the PACS and
    its report in the EHR's Bundle. With no watermark the writes meet the real ENOSPC (files, SQLite) and the node
    runs on through it; with one, the node stops short of it, is SIGKILLed while owing records and started again."""
    from tests.mounts import fill, small_disk

    monkeypatch.setenv("CXR_EDGE_FHIR_TOKEN", "secret-token-1")
    node_port = _free_port()
    orthanc = Orthanc(tmp_path / "orthanc", {"CXREDGE": node_port}).start()
    fhir = FhirEndpoint().start()
    study = "1.2.826.0.1.3680043.8.498.2001"
    files = _radiographs(tmp_path / "unit", synth_small, 8, study=study)
    node = Node(_send_config(tmp_path, edge_bundle, node_port, orthanc, fhir, min_free_mb=min_free_mb))
    with small_disk(tmp_path / "data", 24):
        try:
            node.start()
            assert _responses(_store(node_port, files[:2])) == ["Success"] * 2
            _wait(lambda: len(fhir.posts) == 1 and all(i["state"] == "sent" for i in _outbox(node.config).values()),
                  60, "the first two images' records sent (their outbox files gone)", node)
            filler = fill(tmp_path / "data", leave_kb=min_free_mb * 1024 + 300)  # two images' worth
            answers = _responses(_store(node_port, files[2:]))
            refused = [answer for answer in answers if answer != "Success"]
            # dcmtk names 0xA700, not 0x0110 (processing failure)
            assert refused and set(refused) <= {"Refused: OutOfResources", "Unknown Status: 0x110"}, answers
            acknowledged = 2 + answers.count("Success")
            log = node.text()  # each refusal said, with its reason (the watermark's once, as it is crossed)
            assert (log.count("it could not be") == len(refused) if not min_free_mb else
                    "is below min_free_mb 2: new images are refused" in log), log
            _wait(lambda: "owed, made again later" in node.text(), 60, "a record owed while the disk is full", node)
            if min_free_mb:  # the database has room: the study becomes final, its Bundle owed
                _wait(lambda: f"no FHIR Bundle for study {study} yet" in node.text(), 60, "the Bundle owed", node)
            else:  # SQLite cannot write either: classifying waits (the study is not final yet)
                _wait(lambda: "classifying paused" in node.text(), 60, "classifying paused", node)
            if min_free_mb:  # killed while owing: the next start makes what is owed
                node.stop(signal.SIGKILL)
            filler.unlink()
            if min_free_mb:
                node.start()

            def arrived() -> bool:
                held = orthanc.study(study)
                reports = [sum(e["resource"]["resourceType"] == "DiagnosticReport" for e in body["entry"])
                           for _, _, body in fhir.posts]
                return (len(held) == 2 and [len(uids) for uids in held.values()] == [acknowledged] * 2
                        and reports[-1:] == [acknowledged]
                        and all(i["state"] == "sent" for i in _outbox(node.config).values()))
            _wait(arrived, 180, f"the SRs, heatmaps and report of {acknowledged} images", node)
            rows = node.rows()
            assert len(rows) == acknowledged and all(label for _, label in rows), rows
            assert "could not be classified" not in node.text()
        finally:
            for stop in (node.stop if node.process and node.process.poll() is None else None, orthanc.stop, fhir.stop):
                if stop:
                    stop()
