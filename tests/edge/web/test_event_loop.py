"""No page of the clinician's screen runs SQLite (or anything else that blocks) on the web server's event loop:
one slow query there would hold up every other tablet's page. The screen runs in uvicorn on 127.0.0.1 and a port
the test picks, in this process, so that every call into the state layer can be checked for the thread it runs on."""

import asyncio
import re
import threading

import pytest

from cxr_edge.bundle.load import load_bundle
from cxr_edge.node.state import connection as state_module
from cxr_edge.node.config import load_config
from cxr_edge.node.serve import node_status
from cxr_edge.node.state import Instance, State, StudyHeader
from cxr_edge.run.classify import Classifier
from cxr_edge.run.result import Result
from cxr_edge.web import accounts
from cxr_edge.web.app import Context
from cxr_edge.web.server import WebServer

from tests.node_harness import HOST, _free_port
from tests.edge.web.test_web import PASSWORD, Client


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


@pytest.fixture()
def blocking_calls(monkeypatch):
    """The state layer's calls made on an event loop, by what they ran."""
    found = []
    rows, enter = State._rows, state_module._Transaction.__enter__

    def checked_rows(self, query, args):
        if _on_event_loop():
            found.append(query.split()[0:3])
        return rows(self, query, args)

    def checked_enter(self):
        if _on_event_loop():
            found.append("transaction")
        return enter(self)

    monkeypatch.setattr(State, "_rows", checked_rows)
    monkeypatch.setattr(state_module._Transaction, "__enter__", checked_enter)
    return found


def test_no_page_runs_sqlite_on_the_event_loop(tmp_path, edge_bundle, blocking_calls):
    port = _free_port()
    config_path = tmp_path / "node.toml"
    config_path.write_text(f'model = "{edge_bundle}"\ndata = "{tmp_path / "data"}"\n[dicom]\nenabled = false\n'
                           f'[web]\nenabled = true\nport = {port}\n')
    config = load_config(config_path)
    state = State(config.data)
    accounts.add_user(state, "amina", "reviewer", PASSWORD)
    instance = Instance("1.1", "1.2", "2.1", "2.1.1", "dicom:UNIT", "images/missing.dcm", 1000.0)
    state.add_instance(instance, StudyHeader(patient_id="P-1"))
    state.record_result("1.1", Result(instance.path, "normal", (0.9, 0.04, 0.03, 0.03)))
    classifier = Classifier(load_bundle(edge_bundle))
    web = WebServer(Context(config, state, lambda message: None,
                            lambda: node_status(config, state, classifier, None, []), lambda: classifier))
    web.start()
    try:
        assert web.wait_started()
        client = Client(f"http://{HOST}:{port}")
        assert client.login("amina", PASSWORD)[0] == 303
        study = re.search(r'href="/study/(\d+)"', client.request("/worklist")[2]).group(1)
        pages = ["/worklist/rows", "/worklist/version", f"/study/{study}", "/status", "/healthz", "/api/results",
                 "/image/1/thumbnail.jpg", "/image/1/heatmap.png"]
        assert [client.request(page)[0] for page in pages] == [200, 200, 200, 200, 200, 200, 200, 404]
        form = {"csrf": client.csrf(f"/study/{study}"), "finding-1": "normal", "note": ""}
        assert client.request(f"/study/{study}/review", form)[0] == 303
        assert client.request("/logout", {"csrf": client.csrf("/worklist")})[0] == 303
    finally:
        web.stop()
        web.join(timeout=10)
        state.close()
    assert blocking_calls == []
    assert threading.active_count() < 50
