"""The clinician's screen in-process (Starlette's TestClient on the app itself, no server, no browser): permissions
declared once and checked for every route of the route table, the JSON twins, the triage bands and their words,
reviews that cannot contradict themselves, per-image findings in the export and in calibration, and the bundle's
warnings. tests/edge/web/test_web.py keeps the real server, storescu and Chromium."""

import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner
from starlette.routing import Route
from starlette.testclient import TestClient

from cxr_edge import DISCLAIMER, notice
from cxr_edge.bundle.load import load_bundle
from cxr_edge.cli import main
from cxr_edge.language import SOURCE, languages, using
from cxr_edge.node.candidate import CandidateStatus, ShadowWorker
from cxr_edge.node.config import load_config
from cxr_edge.node.serve import bundle_line, bundle_warnings, node_status
from cxr_edge.node.state import Instance, State, StudyHeader
from cxr_edge.node.worker import Worker
from cxr_edge.reasons import Reason
from cxr_edge.run.classify import Classifier
from cxr_edge.run.result import Result
from cxr_edge.web import accounts
from cxr_edge.web.access import PUBLIC
from cxr_edge.web.app import Context, create_app
from cxr_edge.node.truth import calibration_set
from cxr_edge.web.words import age_sex, person_name

from tests.bundle_edits import edited_copy

PASSWORD = "a long enough password"
FRONTAL_COVID = Result("images/f.dcm", "covid19", (0.05, 0.05, 0.05, 0.85))
LATERAL = Result("images/l.dcm", "covid19", (0.01, 0.01, 0.01, 0.97), True, (Reason("not_frontal"),))
NORMAL = Result("images/n.dcm", "normal", (0.93, 0.03, 0.02, 0.02))


def _study(state, study, images, header=StudyHeader()):
    for n, (uid, result) in enumerate(images):
        state.add_instance(Instance(uid, "1.2.840.10008.5.1.4.1.1.1.1", study, study + ".1", "dicom:UNIT",
                                    result.path, 1000.0 + n), header)
        state.record_result(uid, result)


@pytest.fixture()
def screen(tmp_path, edge_bundle):
    """The app on a node database with three studies: a confident COVID-19 (a frontal film and its referred lateral
    view), a lateral view alone, a normal film; a reviewer and an admin."""
    config_path = tmp_path / "node.toml"
    candidate = edited_copy(edge_bundle, tmp_path / "candidate-bundle", lambda m: m.update(created="candidate"))
    config_path.write_text(f'model = "{edge_bundle}"\ndata = "{tmp_path / "data"}"\n[dicom]\nenabled = false\n'
                           f'[web]\nenabled = true\n[candidate]\nmodel = "{candidate}"\n')
    config = load_config(config_path)
    state = State(config.data)
    _study(state, "2.1", [("1.1", FRONTAL_COVID), ("1.2", LATERAL)],
           StudyHeader("PID-1", "Banda^Ruth", patient_sex="F", patient_age="045Y"))
    _study(state, "2.2", [("1.3", LATERAL)])
    _study(state, "2.3", [("1.4", NORMAL)])
    Worker(None, state, 0, lambda m: None)._settle_studies()
    accounts.add_user(state, "amina", "reviewer", PASSWORD)
    accounts.add_user(state, "root", "admin", PASSWORD)
    classifier = Classifier(load_bundle(edge_bundle))
    shadow = ShadowWorker(Classifier(load_bundle(candidate)), state, 1.0, lambda m: None)  # not started
    beside = CandidateStatus(config, state, classifier, shadow)  # the status page's section, in every language
    context = Context(config, state, lambda m: None, lambda: node_status(config, state, classifier, None, [], beside),
                      lambda: classifier, bundle_warnings(classifier), bundle_line(config, classifier))
    app = create_app(context)
    yield app, state, config
    state.close()


def _client(app, user: str | None = None) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    if user:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        assert client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD}).status_code == 303
    return client


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def _routes(app):
    while not hasattr(app, "routes"):  # inside the middleware: security headers, trusted hosts, contained errors
        app = app.app
    return [route for route in app.routes if isinstance(route, Route)]


def test_every_route_of_the_route_table_is_refused_without_a_login(screen):
    app, _, _ = screen
    client = _client(app)
    checked = 0
    for route in _routes(app):
        page = route.endpoint.page
        if page.need == PUBLIC:
            continue
        path = re.sub(r"\{\w+:int\}", "1", route.path)
        for method in route.methods - {"HEAD"}:
            response = client.request(method, path, data={"csrf": "x"} if method == "POST" else None)
            scripted = path.endswith(".json") or page.api
            assert response.status_code == (401 if scripted else 303), (method, path)
            if not scripted:
                assert response.headers["location"] == "/login", (method, path)
            checked += 1
    assert checked >= 17  # every page, form, picture, twin and the API
    assert {route.path for route in _routes(app) if route.endpoint.page.need == PUBLIC} == {"/", "/healthz", "/login"}


def test_a_reviewer_is_refused_the_admin_pages_and_an_admin_sees_the_audit_trail(screen):
    app, _, _ = screen
    reviewer, admin = _client(app, "amina"), _client(app, "root")
    assert reviewer.get("/admin/activity").status_code == 403
    assert reviewer.get("/admin/activity.json").status_code == 403
    assert 'href="/admin/activity"' not in reviewer.get("/worklist").text
    assert reviewer.get("/study/1").status_code == 200
    trail = admin.get("/admin/activity.json").json()["trail"]
    assert [(line["user"], line["action"], line["study_id"]) for line in trail] == [  # newest first
        ("amina", "viewed", 1), ("root", "logged in", None), ("amina", "logged in", None)]
    assert {user["name"]: user["role"] for user in admin.get("/admin/activity.json").json()["users"]} == {
        "amina": "reviewer", "root": "admin"}


def test_each_json_twin_holds_its_pages_data(screen):
    app, _, _ = screen
    client = _client(app, "amina")
    twin = client.get("/worklist.json?filter=all").json()
    page = client.get("/worklist?filter=all").text
    assert twin["total"] == 3 and len(twin["rows"]) == 3 and twin["notice"].startswith("Pre-diagnosis aid")
    for row in twin["rows"]:
        assert f'href="/study/{row["id"]}"' in page
    study = client.get("/study/1.json").json()["study"]
    html = client.get("/study/1").text
    assert [image["id"] for image in study["images"]] == [int(n) for n in re.findall(r'id="image-(\d+)"', html)]
    assert study["patient_id"] in html and study["band"] == "abnormal"
    assert client.get("/status.json").json()["status"]["bundle"] in client.get("/status").text


def test_the_status_page_shows_the_candidate_s_counts_and_verdict(screen):
    app, state, _ = screen
    client = _client(app, "amina")
    candidate = client.get("/status.json").json()["status"]["candidate"]
    assert candidate["name"] == "candidate-bundle" and candidate["verdict"] == "INCONCLUSIVE"
    assert candidate["counts"] == {"active": 4, "candidate": 0, "candidate_reviewed": 0}
    page = client.get("/status").text
    assert "Candidate bundle" in page and "0 by the candidate and 4 by the active bundle" in page
    assert "Cannot tell yet from 0 reviewed images: review normal and abnormal images." in page


def test_bands_put_a_confident_covid_above_a_referred_lateral_view_and_say_why(screen):
    app, _, _ = screen
    client = _client(app, "amina")
    rows = client.get("/worklist.json?filter=all").json()["rows"]
    assert [row["band"] for row in rows] == ["abnormal", "cannot_judge", "normal"]
    html = client.get("/worklist?filter=all").text
    first, second, third = re.findall(r'<tr class="band-(\w+)">(.*?)</tr>', html, flags=re.S)
    assert first[0] == "abnormal" and "Likely abnormal" in first[1] and "Likely COVID-19 - high" in first[1]
    assert "BANDA, Ruth" in first[1] and "45 years, female" in first[1]
    assert second[0] == "cannot_judge" and "The AI cannot judge this: look yourself" in second[1]
    assert "Not a front (PA or AP) view: the AI reads frontal chest films only." in second[1]
    assert third[0] == "normal" and "Likely normal - high" in third[1]


def test_a_contradictory_review_cannot_be_saved(screen):
    app, state, _ = screen
    client = _client(app, "amina")
    normal = client.get("/study/3.json").json()["study"]
    image = normal["images"][0]["id"]
    token = _csrf(client, "/study/3")
    # "I agree" beside a finding the AI did not give: there is no such field; agreement follows from the finding
    saved = client.post("/study/3/review", data={"csrf": token, "kind": "review", "agree": "agree",
                                                 f"finding-{image}": "covid19"})
    assert saved.status_code == 303
    history = client.get("/study/3.json").json()["study"]["history"]
    assert [(h["finding"], h["agree"]) for h in history] == [("covid19", 0)]
    assert "disagrees with the AI" in client.get("/study/3").text
    for bad in ({f"finding-{image}": "flu"}, {f"finding-{image}": ""}, {"finding-999": "normal"}):
        assert client.post("/study/3/review", data={"csrf": token, "kind": "review", **bad}).status_code == 400
    assert len(client.get("/study/3.json").json()["study"]["history"]) == 1


def test_the_lateral_views_finding_is_its_own_in_the_export_and_in_calibration(screen):
    app, state, config = screen
    client = _client(app, "amina")
    frontal, lateral = (image["id"] for image in client.get("/study/1.json").json()["study"]["images"])
    token = _csrf(client, "/study/1")
    assert client.post("/study/1/review", data={"csrf": token, "kind": "review", f"finding-{frontal}": "covid19",
                                                f"finding-{lateral}": "not_assessable"}).status_code == 303
    results, truth, left_out = calibration_set(state, {})
    assert [r.path for r in results] == ["images/f.dcm"] and truth == {"images/f.dcm": "covid19"} and left_out == 1
    exported = json.loads(CliRunner().invoke(main, ["reviews", "--config", str(config.path), "--format",
                                                    "json"]).output)["reviews"]
    assert [(row["image_id"], row["reader_finding"], row["reader_agrees"]) for row in exported] == [
        (frontal, "covid19", True), (lateral, "not_assessable", None)]


def test_the_bundles_warnings_show_on_every_page_and_in_serve_check(screen, tmp_path, edge_bundle):
    app, _, config = screen
    client = _client(app, "amina")
    for path in ("/worklist", "/study/1", "/status"):
        text = client.get(path).text
        assert "This model learned from made-up (synthetic) images" in text, path
        assert "Where this model came from is not verified" in text, path
    checked = CliRunner().invoke(main, ["serve", "--config", str(config.path), "--check"])
    assert checked.exit_code == 0, checked.output
    assert "WARNING: This model learned from made-up (synthetic) images" in checked.output
    assert "WARNING: Where this model came from is not verified" in checked.output
    # signed, but by a key this box does not trust: said just the same
    from cxr_convert.signing import keygen, load_private_key, sign_bundle
    import shutil

    signed = shutil.copytree(edge_bundle, tmp_path / "signed")
    private, _, _ = keygen(tmp_path / "stranger")
    sign_bundle(signed, load_private_key(private), "stranger")
    stranger = Classifier(load_bundle(signed))
    assert stranger.bundle.origin.fingerprint and not stranger.bundle.origin.verified  # signed, by no trusted key
    state = State(config.data)
    try:
        signed_app = create_app(Context(config, state, lambda m: None, lambda: {}, lambda: stranger,
                                        bundle_warnings(stranger)))
        assert "Where this model came from is not verified" in _client(signed_app, "amina").get("/worklist").text
    finally:
        state.close()


def test_names_ages_and_sexes_as_a_clinician_reads_them():
    assert person_name("Banda^Ruth") == "BANDA, Ruth"
    assert person_name("Okafor^Chidi^N^Dr") == "OKAFOR, Dr Chidi N"
    assert person_name("Mwangi") == "Mwangi" and person_name("") == ""
    assert age_sex({"patient_age": "007M", "patient_sex": "M"}) == "7 months, male"
    assert age_sex({"patient_birth_date": "19800615", "study_date": "20261206"}) == "46 years"
    assert age_sex({"patient_birth_date": "19801215", "study_date": "20261206"}) == "45 years"
    assert age_sex({}) == ""


def test_header_text_is_cut_to_its_vr_and_loses_control_and_bidi_characters():
    from cxr_edge.node.receiver import header_text

    assert header_text("PatientName", "Evil\u202e^Eve\r\n") == "Evil^Eve"
    long = header_text("PatientName", "A" * 20_000 + "=" + "B" * 100)
    assert long == "A" * 63 + "\u2026=" + "B" * 63 + "\u2026"
    assert header_text("AccessionNumber", "1234567890ABCDEFGH") == "1234567890ABCDE\u2026"
    assert header_text("PatientID", "12345-678") == "12345-678"


def test_a_right_to_left_override_or_a_huge_name_cannot_disturb_the_page(tmp_path, edge_bundle):
    """Names as an older database may hold them (the receiver cleans them now): shown isolated, without the
    override, cut to 64 characters; the patient ID after the name stays in order."""
    config_path = tmp_path / "node.toml"
    candidate = edited_copy(edge_bundle, tmp_path / "candidate-bundle", lambda m: m.update(created="candidate"))
    config_path.write_text(f'model = "{edge_bundle}"\ndata = "{tmp_path / "data"}"\n[dicom]\nenabled = false\n'
                           f'[web]\nenabled = true\n[candidate]\nmodel = "{candidate}"\n')
    config = load_config(config_path)
    state = State(config.data)
    _study(state, "2.1", [("1.1", NORMAL)], StudyHeader("12345-678", "Banda^Ruth\u202e"))
    _study(state, "2.2", [("1.2", NORMAL)], StudyHeader("P-2", "Z" * 20_000))
    accounts.add_user(state, "amina", "reviewer", PASSWORD)
    classifier = Classifier(load_bundle(edge_bundle))
    app = create_app(Context(config, state, lambda m: None, lambda: node_status(config, state, classifier, None, []),
                             lambda: classifier))
    html = _client(app, "amina").get("/worklist?filter=all").text
    state.close()
    assert "\u202e" not in html and "<bdi>BANDA, Ruth</bdi>" in html and "ID <bdi>12345-678</bdi>" in html
    assert "Z" * 63 + "\u2026" in html and "Z" * 64 not in html


def test_a_carriage_return_stays_inside_its_csv_field(screen):
    """A header value holding a bare CR (as a unit may send; the receiver strips it now, an older database may
    hold it): quoted, so a reader that splits on CR keeps the row whole and never starts one at '=1+1'."""
    import csv

    from cxr_edge.csv_cells import csv_line

    assert csv_line(["a\rb", "c,d", 'e"f', "=1+1"]) == '"a\rb","c,d","e""f",\'=1+1\n'
    app, state, config = screen
    _study(state, "2.9", [("1.9", NORMAL)], StudyHeader("P-9", "Evil\r=1+1^Eve"))
    Worker(None, state, 0, lambda m: None)._settle_studies()
    client = _client(app, "amina")
    study = next(row["id"] for row in client.get("/worklist.json?filter=all").json()["rows"]
                 if row["patient_id"] == "P-9")
    image = client.get(f"/study/{study}.json").json()["study"]["images"][0]["id"]
    assert client.post(f"/study/{study}/review", data={"csrf": _csrf(client, f"/study/{study}"), "kind": "review",
                                                        f"finding-{image}": "normal"}).status_code == 303
    exported = CliRunner().invoke(main, ["reviews", "--config", str(config.path), "--format", "csv",
                                         "--with-identifiers"])
    assert exported.exit_code == 0, exported.output
    text = exported.output
    rows = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
    assert len(rows) == 2 and not any(row[0].startswith("=1+1") for row in rows)
    name = dict(zip(rows[0], rows[1]))["patient_name"]
    assert name.startswith("Evil") and name.endswith("=1+1^Eve")  # the split stayed inside its field


def test_no_escape_sequence_or_bidi_control_of_a_header_reaches_the_terminal(screen):
    """An older database's header values with a terminal escape (clear the screen) and a right-to-left override:
    `reviews` and `results`, in every format, print them as visible \\x1b escapes, without the override."""
    app, state, config = screen
    _study(state, "2.10", [("1.10", NORMAL)], StudyHeader("P\u202e-10", "Evil\x1b[2J^Eve", "A\x1b]0;x\x07"))
    Worker(None, state, 0, lambda m: None)._settle_studies()
    client = _client(app, "amina")
    study = next(row["id"] for row in client.get("/worklist.json?filter=all").json()["rows"]
                 if row["patient_name"].startswith("Evil"))
    image = client.get(f"/study/{study}.json").json()["study"]["images"][0]["id"]
    assert client.post(f"/study/{study}/review", data={"csrf": _csrf(client, f"/study/{study}"), "kind": "review",
                                                        f"finding-{image}": "normal"}).status_code == 303
    outputs = [CliRunner().invoke(main, ["reviews", "--config", str(config.path), "--format", fmt,
                                         "--with-identifiers"]) for fmt in ("csv", "json")]
    outputs += [CliRunner().invoke(main, ["results", "--config", str(config.path), "--format", fmt])
                for fmt in ("table", "csv", "json")]
    for shown in outputs:
        assert shown.exit_code == 0, shown.output
        assert "\x1b" not in shown.output and "\x07" not in shown.output and "\u202e" not in shown.output
    assert "Evil\\x1b[2J^Eve" in outputs[0].output and "P-10" in outputs[0].output


@pytest.fixture()
def clock(monkeypatch):
    """The accounts' clock, moved by the test: now[0] seconds."""
    import time
    from types import SimpleNamespace

    from cxr_edge.web import accounts as accounts_module

    now = [time.time()]
    monkeypatch.setattr(accounts_module, "time", SimpleNamespace(time=lambda: now[0]))
    return now


def test_the_worklists_background_poll_does_not_keep_a_session_alive(screen, clock):
    app, _, _ = screen
    client = _client(app, "amina")
    start = clock[0]
    for hours in (2, 4, 6, 8):  # a tablet left on the worklist: it polls, nobody is there
        clock[0] = start + hours * 3600
        assert client.get("/worklist/version").status_code in (200, 303)
    clock[0] = start + 8 * 3600 + 120
    assert client.get("/worklist").status_code == 303  # idle since the login: logged out


def test_a_session_ends_at_its_absolute_lifetime_however_active(screen, clock):
    app, _, config = screen
    client = _client(app, "amina")
    start = clock[0]
    for hours in range(1, 12):  # someone at the screen every hour
        clock[0] = start + hours * 3600
        assert client.get("/worklist").status_code == 200
    clock[0] = start + config.web.session_hours * 3600 + 60
    assert client.get("/worklist").status_code == 303


def test_failed_logins_from_elsewhere_cannot_lock_a_clinician_out(screen):
    _, state, _ = screen
    for _ in range(accounts.MAX_FAILURES):
        assert accounts.log_in(state, "amina", "wrong password", "10.9.9.9") == "wrong"
    assert accounts.log_in(state, "amina", PASSWORD, "10.9.9.9") == "refused"  # that address, that name: limited
    assert isinstance(accounts.log_in(state, "amina", PASSWORD, "127.0.0.1"), tuple)  # the clinician's own: in
    for n in range(accounts.MAX_ADDRESS_FAILURES - accounts.MAX_FAILURES):  # names guessed from one address
        accounts.log_in(state, f"guess{n}", "x" * 12, "10.9.9.9")
    assert accounts.log_in(state, "root", PASSWORD, "10.9.9.9") == "refused"


def test_an_old_password_hash_is_made_again_with_todays_parameters_at_login(screen):
    import hashlib
    import secrets

    _, state, _ = screen
    salt = secrets.token_bytes(16)
    old = "scrypt$16384$8$1$" + salt.hex() + "$" + hashlib.scrypt(b"an old long password", salt=salt, dklen=32,
                                                                n=2**14, r=8, p=1).hex()
    assert state.add_user_row("nurse", "reviewer", old, 1.0)
    assert isinstance(accounts.log_in(state, "nurse", "an old long password", "127.0.0.1"), tuple)
    assert state.password_hash("nurse").startswith("scrypt$131072$8$1$")
    assert isinstance(accounts.log_in(state, "nurse", "an old long password", "127.0.0.1"), tuple)


def test_hsts_under_tls_and_no_forwarded_address_believed_by_default(screen, tmp_path):
    import dataclasses

    from cxr_edge.web.server import WebServer

    app, state, config = screen
    assert "strict-transport-security" not in _client(app).get("/login").headers
    tls = dataclasses.replace(config, web=dataclasses.replace(config.web, tls_cert="c.pem", tls_key="k.pem"))
    secured = create_app(Context(tls, state, lambda m: None, dict, lambda: None))
    assert _client(secured).get("/login").headers["strict-transport-security"] == "max-age=31536000"
    server = WebServer(Context(config, state, lambda m: None, dict, lambda: None)).server.config
    assert server.proxy_headers is False
    proxied = dataclasses.replace(config, web=dataclasses.replace(config.web, trusted_proxies=("10.0.0.5",)))
    server = WebServer(Context(proxied, state, lambda m: None, dict, lambda: None)).server.config
    assert server.proxy_headers is True and server.forwarded_allow_ips == "10.0.0.5"


SPOKEN = [code for code in languages() if code != SOURCE]


def _pages(client) -> dict[str, str]:
    """Every page a clinician or an admin opens, and an error page."""
    paths = ["/worklist?filter=all", "/worklist?filter=to_review", "/study/1", "/study/2", "/study/3",
             "/study/1/slip", "/status", "/admin/activity", "/study/999"]
    return {path: client.get(path).text for path in paths}


@pytest.mark.parametrize("code", SPOKEN)
def test_a_user_s_language_is_on_every_page_and_only_on_that_user_s(screen, code):
    from tests.catalogue import english_in
    from tests.edge.test_languages import page_text

    app, state, config = screen
    accounts.set_language(state, "root", code)
    chosen, other = _client(app, "root"), _client(app, "amina")
    # a review and a confirmatory result in the history, a heatmap asked for: their words show too
    token = _csrf(chosen, "/study/1")
    finding = re.search(r'name="(finding-\d+)"', chosen.get("/study/1").text).group(1)
    assert chosen.post("/study/1/review", data={"csrf": token, "kind": "review", finding: "normal"}).status_code == 303
    assert chosen.post("/study/1/review", data={"csrf": token, "kind": "confirmation",
                                                "code": "pcr_positive"}).status_code == 303
    for path, page in _pages(chosen).items():
        assert f'<html lang="{code}">' in page, path
        assert english_in(page_text(page), code) == [], path
    with using(code):
        assert notice() in chosen.get("/worklist").text
    for path, page in _pages(other).items():  # amina chose nothing: the box's language, English here
        assert '<html lang="en">' in page and DISCLAIMER in page, path
    assert chosen.get("/worklist.json").json()["notice"] != DISCLAIMER  # the twin's words too; its keys stay
    assert set(chosen.get("/worklist.json").json()) == set(other.get("/worklist.json").json())


def test_the_switch_on_the_screen_changes_the_user_s_language_and_refuses_one_the_box_lacks(screen):
    app, state, _ = screen
    client = _client(app, "amina")
    token = _csrf(client, "/status")
    moved = client.post("/language", data={"csrf": token, "language": SPOKEN[0], "back": "/status"})
    assert (moved.status_code, moved.headers["location"]) == (303, "/status")
    assert f'<html lang="{SPOKEN[0]}">' in client.get("/status").text
    assert client.post("/language", data={"csrf": token, "language": "xx"}).status_code == 400
    assert client.post("/language", data={"language": "en"}).status_code == 403  # no CSRF token: refused
    away = client.post("/language", data={"csrf": token, "language": "en", "back": "//evil.example/x"})
    assert away.headers["location"] == "/worklist"  # never sent off the box
    assert '<html lang="en">' in client.get("/worklist").text


def test_the_login_page_speaks_the_browser_s_language_else_the_box_s(screen, tmp_path, edge_bundle):
    app, state, config = screen
    client = _client(app)
    asked = client.get("/login", headers={"Accept-Language": f"de-DE,{SPOKEN[0]};q=0.8,en;q=0.5"}).text
    assert f'<html lang="{SPOKEN[0]}">' in asked
    assert '<html lang="en">' in client.get("/login", headers={"Accept-Language": "de"}).text
    # a box set to speak another language ([web] language): the login page without a browser's choice, and the
    # pages of users who chose none
    boxed = replace(config, web=replace(config.web, language=SPOKEN[-1]))
    classifier = Classifier(load_bundle(edge_bundle))
    other = create_app(Context(boxed, state, lambda m: None, lambda: node_status(boxed, state, classifier, None, []),
                               lambda: classifier, bundle_warnings(classifier), bundle_line(boxed, classifier)))
    assert f'<html lang="{SPOKEN[-1]}">' in _client(other).get("/login").text
    assert f'<html lang="{SPOKEN[-1]}">' in _client(other, "amina").get("/worklist").text


def test_a_user_added_with_a_language_keeps_it_until_told_otherwise(screen, monkeypatch):
    app, state, config = screen
    monkeypatch.setenv("CXR_EDGE_PASSWORD", PASSWORD)
    added = CliRunner().invoke(main, ["user", "add", "dr.lopez", "--role", "reviewer", "--language", SPOKEN[0],
                                      "--config", str(config.path)])
    assert added.exit_code == 0, added.output
    assert f'<html lang="{SPOKEN[0]}">' in _client(app, "dr.lopez").get("/worklist").text
    refused = CliRunner().invoke(main, ["user", "add", "dr.x", "--role", "reviewer", "--language", "xx",
                                        "--config", str(config.path)])
    assert refused.exit_code != 0 and "this box has no catalogue for it" in refused.output
    moved = CliRunner().invoke(main, ["user", "language", "dr.lopez", "box", "--config", str(config.path)])
    assert moved.exit_code == 0, moved.output
    assert '<html lang="en">' in _client(app, "dr.lopez").get("/worklist").text  # the box's again


def test_an_image_of_another_patient_is_flagged_and_left_out_of_its_study_s_result(screen):
    """A normal film of PID-7, then a confident COVID-19 film that names PID-8 in the same study: the study stays
    likely normal (its own patient's image), and both the worklist and the study page say, in words, that an image
    of another patient ID is in it."""
    app, state, _ = screen
    state.add_instance(Instance("1.7", "1.2.840.10008.5.1.4.1.1.1.1", "2.7", "2.7.1", "dicom:UNIT", "images/a.dcm",
                                2000.0), StudyHeader("PID-7", "Moyo^Grace"))
    state.record_result("1.7", NORMAL)
    state.add_instance(Instance("1.8", "1.2.840.10008.5.1.4.1.1.1.1", "2.7", "2.7.1", "dicom:UNIT", "images/b.dcm",
                                2001.0), StudyHeader("PID-8", "Other^Person"))
    state.record_result("1.8", FRONTAL_COVID)
    Worker(None, state, 0, lambda m: None)._settle_studies()
    client = _client(app, "amina")
    row = next(r for r in client.get("/worklist.json?filter=all").json()["rows"] if r["patient_id"] == "PID-7")
    assert (row["band"], row["other_patient"]) == ("normal", 1)  # the COVID-19 film of PID-8 did not make it abnormal
    page = client.get(f"/study/{row['id']}").text
    assert "1 image of this study names another patient ID than the study's" in page
    assert "This image names another patient ID: <bdi>PID-8</bdi>" in page
    rows = client.get("/worklist?filter=all").text
    assert "Images of another patient ID in this study: check them." in rows


def test_only_the_configured_host_names_are_answered(screen, edge_bundle, tmp_path):
    app, state, config = screen
    assert _client(app).get("/login", headers={"Host": "rebinding.example"}).status_code == 400  # the default
    named = replace(config, web=replace(config.web, hosts=("cxr-box.local",)))
    classifier = Classifier(load_bundle(edge_bundle))
    other = create_app(Context(named, state, lambda m: None, lambda: node_status(named, state, classifier, None, []),
                               lambda: classifier, [], bundle_line(named, classifier)))
    client = TestClient(other, base_url="http://cxr-box.local", follow_redirects=False)
    assert client.get("/login").status_code == 200
    refused = client.get("/login", headers={"Host": "127.0.0.1"})
    assert refused.status_code == 400 and refused.headers["x-frame-options"] == "DENY"
    wrong = tmp_path / "node.toml"
    wrong.write_text(f'model = "{edge_bundle}"\ndata = "{tmp_path / "d"}"\n[dicom]\nenabled = false\n'
                     '[web]\nhosts = ["bad host/x"]\n')
    with pytest.raises(Exception, match=r"\[web\] hosts: a list of host names or addresses"):
        load_config(wrong)


@pytest.mark.parametrize("password,why", [("password12", "30,000 most common passwords"),
                                          ("qwertyuiop", "30,000 most common passwords"),
                                          ("aaaaaaaaaaaa", 'Repeats like "aaa"'),
                                          ("abcdefghijkl", "Sequences"),
                                          ("short", "at least 10 characters")])
def test_a_common_or_guessable_password_is_refused_with_why(screen, password, why):
    app, state, config = screen
    refused = CliRunner().invoke(main, ["user", "add", "nurse.joy", "--role", "reviewer", "--config",
                                        str(config.path)], env={"CXR_EDGE_PASSWORD": password})
    assert refused.exit_code != 0 and why in refused.output, refused.output
    assert not accounts.is_user(state, "nurse.joy")
    accepted = CliRunner().invoke(main, ["user", "add", "nurse.joy", "--role", "reviewer", "--config",
                                         str(config.path)], env={"CXR_EDGE_PASSWORD": "maize lantern orbit kettle"})
    assert accepted.exit_code == 0, accepted.output


def test_api_tokens_are_named_listed_revoked_one_by_one_and_expire(screen, clock):
    app, state, config = screen

    def user(*args):
        shown = CliRunner().invoke(main, ["user", *args, "--config", str(config.path)])
        assert shown.exit_code == 0, shown.output
        return shown.output.strip()

    export = user("token", "amina", "--name", "export")
    backup = user("token", "amina", "--name", "backup", "--days", "1")
    assert "export" in user("tokens", "amina") and "backup" in user("tokens", "amina")
    assert export not in user("tokens", "amina")  # the token itself is never kept, so never listed
    taken = CliRunner().invoke(main, ["user", "token", "amina", "--name", "export", "--config", str(config.path)])
    assert taken.exit_code != 0 and "has a token named export already" in taken.output
    client = _client(app)
    asks = lambda token: client.get("/api/results", headers={"Authorization": f"Bearer {token}"}).status_code  # noqa
    assert (asks(export), asks(backup)) == (200, 200)
    assert user("revoke", "amina", "export") == "token export of user amina revoked"
    assert (asks(export), asks(backup)) == (401, 200)  # revoked one by one
    clock[0] += 86400 + 1
    assert asks(backup) == 401  # expired after its day
    assert "expired" in user("tokens", "amina") and "export" not in user("tokens", "amina")


def test_user_add_says_what_is_wrong_with_a_password_before_asking_it_again(screen):
    app, state, config = screen
    typed = "password12\nmaize lantern orbit kettle\nmaize lantern orbit kettle\n"
    added = CliRunner().invoke(main, ["user", "add", "nurse.kim", "--role", "reviewer", "--config", str(config.path)],
                               input=typed, env={"CXR_EDGE_PASSWORD": ""})
    assert added.exit_code == 0, added.output
    said = added.output
    assert said.count("Password:") == 2 and said.count("Repeat for confirmation:") == 1, said
    assert said.index("30,000 most common") < said.index("Repeat for confirmation")
    assert accounts.is_user(state, "nurse.kim")


def test_the_results_table_shows_the_accession_time_label_and_referral_in_80_columns(screen):
    app, state, config = screen
    _study(state, "2.11", [("1.11", LATERAL)], StudyHeader("P-11", "Zulu^Ann", "ACC-2026-0042"))
    shown = CliRunner().invoke(main, ["results", "--config", str(config.path)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    row = next(line for line in lines if "ACC-2026-0042" in line)
    assert "COVID-19" in row and " yes " in row and "dicom:UNIT" in row and "1.11" not in row  # no UID alone
    assert all(len(line) <= 80 for line in lines[:-1])  # but the notice, which wraps as a terminal does
    listed = json.loads(CliRunner().invoke(main, ["results", "--config", str(config.path), "--format",
                                                  "json"]).stdout)["results"]
    assert next(r for r in listed if r["sop_instance_uid"] == "1.11")["accession_number"] == "ACC-2026-0042"
