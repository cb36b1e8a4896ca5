"""The clinician's screen, served by `cxr-edge serve` on 127.0.0.1 and a port the test picks, with studies that
dcmtk's storescu sent: the login and its limits, CSRF, escaping, headers, the API, and a real browser (Debian's
Chromium through its chromium-driver, driven by Selenium) that logs in, opens a study, records a review and logs
out. Every loop is bounded."""

import http.cookiejar
import json
from pathlib import Path
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from click.testing import CliRunner

from cxr_edge import DISCLAIMER
from cxr_edge.cli import main
from cxr_edge.labels import in_words
from cxr_edge.language import SOURCE, languages

from tests.node_harness import HOST, Node, _config, _free_port, _radiographs, _store

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
EVIL = "<script>alert(1)</script>^Eve"


class Client:
    """A browser-like HTTP client: cookies kept, redirects not followed (the test looks at them)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    def __init__(self, base: str):
        self.base, self.jar = base, http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), self._NoRedirect)

    def request(self, path: str, form: dict | None = None, headers: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            response = self.opener.open(request, timeout=30)
        except urllib.error.HTTPError as exc:
            response = exc
        return response.status if hasattr(response, "status") else response.code, dict(response.headers), \
            response.read().decode(errors="replace")

    def login(self, name: str, password: str):
        _, _, html = self.request("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        return self.request("/login", {"csrf": token, "name": name, "password": password})

    def csrf(self, path: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.request(path)[2]).group(1)


@pytest.fixture()
def screen(tmp_path, edge_bundle, synth_small, monkeypatch):
    dicom_port, web_port = _free_port(), _free_port()
    config = _config(tmp_path, edge_bundle, dicom_port)
    with config.open("a") as fh:
        fh.write(f"[web]\nenabled = true\nport = {web_port}\n")
    monkeypatch.setenv("CXR_EDGE_PASSWORD", PASSWORD)
    added = CliRunner().invoke(main, ["user", "add", "amina", "--role", "reviewer", "--config", str(config)])
    assert added.exit_code == 0, added.output
    node = Node(config)
    node.port = dicom_port
    node.start()
    deadline = time.monotonic() + 30
    while "web screen on http://127.0.0.1:" not in node.text():
        assert time.monotonic() < deadline and node.process.poll() is None, node.text()
        time.sleep(0.1)
    files = _radiographs(tmp_path / "unit", synth_small, 2, study="1.2.826.0.1.3680043.8.498.2001")
    files += _radiographs(tmp_path / "unit2", synth_small, 1, study="1.2.826.0.1.3680043.8.498.2002")
    import pydicom

    evil = pydicom.dcmread(files[-1])
    evil.PatientName = EVIL
    evil.save_as(files[-1])
    assert _store(dicom_port, files).returncode == 0
    node.wait_classified(3)
    yield node, f"http://{HOST}:{web_port}", config
    if node.process.poll() is None:
        node.stop()


def test_every_page_and_api_but_healthz_needs_a_login(screen):
    node, base, _ = screen
    client = Client(base)
    for path in ("/worklist", "/worklist/rows", "/worklist/version", "/study/1", "/status", "/image/1/thumbnail.jpg",
                 "/image/1/heatmap.png"):
        status, headers, _ = client.request(path)
        assert (status, headers.get("location")) == (303, "/login"), path
    assert client.request("/study/1/review", {"agree": "agree", "finding": "normal"})[0] == 303
    assert client.request("/api/results")[0] == 401
    status, headers, body = client.request("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert "PID-0042" not in body and "Test^Patient" not in body
    assert headers["content-security-policy"].startswith("default-src 'self';") and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_login_cookie_csrf_limits_and_escaping(screen):
    node, base, config = screen
    client = Client(base)
    status, headers, _ = client.login("amina", PASSWORD)
    assert status == 303 and headers["location"] == "/worklist"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "cxr_session=" in cookie
    status, _, html = client.request("/worklist?filter=all")
    assert status == 200 and html.count('class="patient"') == 2
    # the name as a clinician reads it (FAMILY, Given), shown as text, never run
    assert "&lt;SCRIPT&gt;ALERT(1)&lt;/SCRIPT&gt;, Eve" in html and "<script>alert" not in html.lower()
    assert html.count(DISCLAIMER) == 1 and "Pre-diagnosis aid, not a diagnosis" in html  # said once, not twice
    hrefs = re.findall(r'(?:href|src|action)="([^"]+)"', html)
    assert hrefs and not any("PID-0042" in h or "1.2.826" in h for h in hrefs)  # internal ids only in URLs
    study = re.search(r'href="/study/(\d+)"', html).group(1)
    # a POST without its CSRF token is refused, with it accepted and appended
    first = re.search(r'name="(finding-\d+)"', client.request(f"/study/{study}")[2]).group(1)
    assert client.request(f"/study/{study}/review", {"kind": "review", first: "normal"})[0] == 403
    token = client.csrf(f"/study/{study}")
    status, headers, _ = client.request(f"/study/{study}/review", {"csrf": token, "kind": "review",
                                                                   first: "other_abnormal"})
    assert status == 303
    page = client.request(f"/study/{study}")[2]
    # no AI label is "other abnormality": the review disagrees, and says so without being told
    assert "image 1: finding Other abnormality, disagrees with the AI" in page and "amina" in page
    assert 'id="reviewed"' in page
    # the heatmap, on request, then kept; the thumbnail; the status page with its monitoring chart
    image = re.search(r'action="/image/(\d+)/heatmap"', page).group(1)
    assert client.request(f"/image/{image}/heatmap.png")[0] == 404
    assert client.request(f"/image/{image}/heatmap", {"csrf": token})[0] == 303
    status, headers, _ = client.request(f"/image/{image}/heatmap.png")
    assert status == 200 and headers["content-type"] == "image/png"
    assert 'class="heatmap"' in client.request(f"/study/{study}")[2]
    assert client.request(f"/image/{image}/thumbnail.jpg")[1]["content-type"] == "image/jpeg"
    status_page = client.request("/status")[2]
    assert "Monitoring, week by week" in status_page and "<svg" in status_page and "CXREDGE on 127.0.0.1" in status_page
    # the API, with a session or a bearer token
    assert json.loads(client.request("/api/results")[2])["results"]
    made = CliRunner().invoke(main, ["user", "token", "amina", "--config", str(config)])
    bearer = made.stdout.strip()
    rows = json.loads(Client(base).request("/api/results", headers={"Authorization": f"Bearer {bearer}"})[2])
    assert len(rows["results"]) == 3
    assert Client(base).request("/api/results", headers={"Authorization": "Bearer nonsense"})[0] == 401
    assert json.loads(client.request("/api/results?since=2999-01-01")[2])["results"] == []
    assert client.request("/api/results?since=yesterday")[0] == 400
    # the sixth bad password in a minute is refused without being checked: even the right one
    other = Client(base)
    for _ in range(5):
        assert other.login("amina", "wrong password")[1]["location"] == "/login?m=wrong"
    assert other.login("amina", PASSWORD)[1]["location"] == "/login?m=wait"
    assert "login refused for user 'amina'" in node.text()
    # the limit is per user and address: another name from the same address is still checked (up to 20 a minute)
    Client(base).login("PID-0042", "typed into the wrong field")  # a name that is no user is never logged
    assert "failed login for an unknown user name" in node.text()
    for secret in ("PID-0042", "Test^Patient", "Eve", PASSWORD):
        assert secret not in node.text()


def _ai_label(config, study_id: int) -> str:
    """The AI's label of a study's first image, as stored."""
    from cxr_edge.node.state import State

    state = State(load_config_data(config))
    try:
        return state.study_page(study_id)["images"][0]["label"]
    finally:
        state.close()


def test_a_clinician_logs_in_reviews_a_study_and_logs_out_in_chromium(screen, tmp_path):
    from tests.peers import tool

    driver_path = tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.browser import chromium

    node, base, config = screen
    command = chromium(tmp_path / "profile")
    options = webdriver.ChromeOptions()
    options.binary_location = command[0]
    for flag in command[1:]:
        options.add_argument(flag)
    options.add_argument("--window-size=768,1024")  # a tablet
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(base + "/worklist")
        assert browser.current_url.endswith("/login")
        browser.find_element(By.ID, "name").send_keys("amina")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "login").click()
        WebDriverWait(browser, 20).until(lambda b: b.current_url.endswith("/worklist"))
        browser.save_screenshot(str(tmp_path / "worklist.png"))
        patients = browser.find_elements(By.CSS_SELECTOR, "a.patient")
        assert len(patients) == 2 and any("<SCRIPT>ALERT(1)</SCRIPT>, Eve" in p.text for p in patients)  # as text
        patients[0].click()
        WebDriverWait(browser, 20).until(lambda b: "/study/" in b.current_url)
        label = _ai_label(config, int(browser.current_url.rsplit("/", 1)[1].split("?")[0]))
        Select(browser.find_element(By.ID, "finding-1")).select_by_value(label)  # the AI's own label: agreement
        browser.find_element(By.ID, "save-review").click()
        WebDriverWait(browser, 20).until(lambda b: "m=saved" in b.current_url)
        history = browser.find_element(By.ID, "history").text
        assert "amina" in history and f"image 1: finding {in_words(label)}, agrees with the AI" in history
        assert "(agrees with the AI)" in browser.find_element(By.ID, "reviewed").text  # the header shows it
        browser.save_screenshot(str(tmp_path / "study.png"))
        browser.get(base + "/worklist?filter=reviewed")
        assert f"Reviewed: {in_words(label)} (agrees), amina" in browser.find_element(By.ID, "rows").text
        browser.find_element(By.ID, "logout").click()
        WebDriverWait(browser, 20).until(lambda b: "/login" in b.current_url)
        browser.get(base + "/worklist")
        assert browser.current_url.endswith("/login")
    finally:
        browser.quit()
    assert (tmp_path / "worklist.png").stat().st_size > 1000 and (tmp_path / "study.png").stat().st_size > 1000


def _browser(tmp_path, width: int, height: int, *flags: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.browser import chromium
    from tests.peers import tool

    driver_path = tool("chromedriver")
    command = chromium(tmp_path / f"profile-{width}")
    options = webdriver.ChromeOptions()
    options.binary_location = command[0]
    for flag in command[1:]:
        options.add_argument(flag)
    for flag in flags:
        options.add_argument(flag)
    options.add_argument(f"--window-size={max(width, 500)},{height}")  # Chromium's windows are 500 px at least
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    # the screen of a phone, a tablet or a desktop, as its browser lays pages out
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                    "deviceScaleFactor": 1, "mobile": width < 600})
    return browser


@pytest.mark.parametrize("width", [390, 768, 1280])
def test_no_page_scrolls_sideways_on_a_phone_a_tablet_or_a_desktop(screen, tmp_path, width, monkeypatch):
    from selenium.webdriver.common.by import By

    node, base, config = screen
    monkeypatch.setenv("CXR_EDGE_PASSWORD", PASSWORD)
    added = CliRunner().invoke(main, ["user", "add", "root", "--role", "admin", "--config", str(config)])
    assert added.exit_code == 0, added.output
    browser = _browser(tmp_path, width, 900)
    try:
        _log_in(browser, base, "root")
        study = re.search(r"/study/(\d+)", browser.find_element(By.CSS_SELECTOR, "a.patient").get_attribute("href"))
        pages = ["/worklist?filter=all", f"/study/{study.group(1)}", f"/study/{study.group(1)}/slip", "/status",
                 "/admin/activity", "/login"]
        for page in pages:
            browser.get(base + page)
            wide, window = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            assert wide <= window, f"{page} is {wide} px wide in a {window} px window"
        browser.get(base + "/worklist?filter=all")
        browser.save_screenshot(str(tmp_path / f"worklist-{width}.png"))
    finally:
        browser.quit()


@pytest.mark.parametrize("code", [code for code in languages() if code != SOURCE])
def test_in_each_language_no_page_shows_an_english_sentence_or_scrolls_sideways_on_a_phone(screen, tmp_path, code,
                                                                                           monkeypatch):
    """In Chromium at 390 px (a phone), a user whose language is `code`: every page in it, longer words and all; the
    login page in the browser's language."""
    from tests.catalogue import english_in

    node, base, config = screen
    monkeypatch.setenv("CXR_EDGE_PASSWORD", PASSWORD)
    added = CliRunner().invoke(main, ["user", "add", "root", "--role", "admin", "--language", code, "--config",
                                      str(config)])
    assert added.exit_code == 0, added.output
    client = Client(base)  # a heatmap and a review, so that their words show too
    client.login("amina", PASSWORD)
    study = re.search(r'href="/study/(\d+)"', client.request("/worklist?filter=all")[2]).group(1)
    page = client.request(f"/study/{study}")[2]
    token = client.csrf(f"/study/{study}")
    image = re.search(r'action="/image/(\d+)/heatmap"', page).group(1)
    assert client.request(f"/image/{image}/heatmap", {"csrf": token})[0] == 303
    finding = re.search(r'name="(finding-\d+)"', page).group(1)
    assert client.request(f"/study/{study}/review", {"csrf": token, "kind": "review", finding: "normal"})[0] == 303
    browser = _browser(tmp_path, 390, 900)
    try:  # the browser asks for the language (Accept-Language), as one set up in it does
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Accept-Language": f"{code},en;q=0.5"}})
        browser.get(base + "/login")
        assert browser.execute_script("return document.documentElement.lang") == code  # Accept-Language
        _log_in(browser, base, "root")
        pages = ["/worklist?filter=all", "/worklist?filter=reviewed", f"/study/{study}", f"/study/{study}/slip",
                 "/status", "/admin/activity", "/study/99999"]
        for path in pages:
            browser.get(base + path)
            text, lang, wide, window = browser.execute_script(  # the text but for what is marked English
                "var copy = document.body.cloneNode(true);"
                "copy.querySelectorAll('[lang=en]').forEach(function (e) { e.remove(); });"
                "document.documentElement.appendChild(copy); var text = copy.innerText; copy.remove();"
                "return [text, document.documentElement.lang, "
                "document.documentElement.scrollWidth, window.innerWidth]")
            assert lang == code, path
            assert english_in(text, code) == [], path
            assert wide <= window, f"{path} in {code} is {wide} px wide in a {window} px window"
        browser.get(f"{base}/study/{study}")
        browser.save_screenshot(str(tmp_path / f"study-{code}.png"))
    finally:
        browser.quit()


def _log_in(browser, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base + "/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 20).until(lambda b: b.current_url.endswith("/worklist"))


def _canvas_pixels(browser) -> list[int]:
    """The viewer canvas's pixels (gray levels of a 64 x 64 grid) as the browser shows them."""
    return browser.execute_script("""
        var c = document.querySelector('.viewer-image canvas'), d = document.createElement('canvas');
        d.width = 64; d.height = 64; var g = d.getContext('2d'); g.drawImage(c, 0, 0, 64, 64);
        var px = g.getImageData(0, 0, 64, 64).data, out = [];
        for (var i = 0; i < px.length; i += 4) out.push(px[i]);
        return out;""")


def test_the_viewer_shows_the_image_at_full_resolution_with_window_level_and_the_heatmap(screen, tmp_path):
    """In Chromium (WebGL by SwiftShader, as a tablet without a GPU driver would), with the screen's CSP."""
    import pydicom
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    node, base, config = screen
    client = Client(base)
    client.login("amina", PASSWORD)
    study = re.search(r'href="/study/(\d+)"', client.request("/worklist?filter=all")[2]).group(1)
    page = client.request(f"/study/{study}")[2]
    image = re.search(r'data-image="(\d+)"', page).group(1)
    assert client.request(f"/image/{image}/heatmap", {"csrf": client.csrf(f"/study/{study}")})[0] == 303
    # the values at full resolution and bit depth, as the DICOM file holds them
    status, headers, _ = client.request(f"/image/{image}/full.json")
    meta = json.loads(client.request(f"/image/{image}/full.json")[2])
    source = pydicom.dcmread(next((Path(load_config_data(config)) / "images").rglob("*.dcm")))
    assert (meta["rows"], meta["columns"], meta["type"]) == (source.Rows, source.Columns, "Uint16")
    assert meta["max"] > 255  # 12-bit values, not an 8-bit rendition
    assert headers["cache-control"] == "no-store"
    browser = _browser(tmp_path, 1280, 1000, "--enable-unsafe-swiftshader", "--use-angle=swiftshader")
    try:
        _log_in(browser, base, "amina")
        browser.get(f"{base}/study/{study}")
        section = browser.find_element(By.ID, f"image-{image}")
        section.find_element(By.CLASS_NAME, "open-viewer").click()
        WebDriverWait(browser, 60).until(lambda b: b.execute_script(f"return !!(window.cxrViewers && cxrViewers['{image}'])"))
        time.sleep(0.5)
        before = _canvas_pixels(browser)
        assert max(before) - min(before) > 50, "the viewer shows no image"
        browser.execute_script(f"var v = cxrViewers['{image}']; var r = v.voi(); "
                               "v.window((r.lower + r.upper) / 2, (r.upper - r.lower) / 4);")
        time.sleep(0.5)
        after = _canvas_pixels(browser)
        assert sum(abs(a - b) for a, b in zip(before, after)) > 64 * 64  # window/level changed the shown pixels
        toggle = section.find_element(By.CLASS_NAME, "heat-toggle")
        heat = section.find_element(By.CLASS_NAME, "viewer-heat")
        assert not heat.is_displayed()
        toggle.click()
        assert heat.is_displayed() and heat.size["width"] > 100
        logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "Content Security Policy" in e["message"]]
        assert not logs, logs
        browser.save_screenshot(str(tmp_path / "viewer.png"))
    finally:
        browser.quit()


def test_new_studies_appear_without_a_reload(screen, tmp_path, synth_small):
    node, base, _ = screen
    client = Client(base)
    client.login("amina", PASSWORD)
    before = json.loads(client.request("/worklist/version")[2])["version"]
    more = _radiographs(tmp_path / "unit3", synth_small, 1, study="1.2.826.0.1.3680043.8.498.2003")
    assert _store(node.port, more).returncode == 0
    deadline = time.monotonic() + 60
    while json.loads(client.request("/worklist/version")[2])["version"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert client.request("/worklist/rows?filter=all")[2].count('class="patient"') == 3


def test_calibrate_from_reviews_matches_calibrate_on_the_same_images_as_a_folder(screen, tmp_path, synth_small,
                                                                                 edge_bundle):
    import numpy as np
    from PIL import Image

    from cxr_train.synth_dicom import write_dicom

    node, base, config = screen
    folder = tmp_path / "labelled"
    sent = []
    for label, name in (("normal", "Normal"), ("covid19", "COVID"), ("lung_opacity", "Lung_Opacity")):
        for i, png in enumerate(sorted((synth_small / name / "images").glob("*.png"))[:4]):
            gray = np.asarray(Image.open(png).convert("L").resize((256, 256)), np.uint16) * 16
            study = f"1.2.826.0.1.3680043.8.498.3{len(sent):03d}"
            (folder / label).mkdir(parents=True, exist_ok=True)
            sent.append((write_dicom(folder / label / f"{i}.dcm", gray, StudyInstanceUID=study,
                                     SeriesInstanceUID=study + ".1", ViewPosition="PA"), label, study))
    assert _store(node.port, [path for path, _, _ in sent]).returncode == 0
    node.wait_classified(3 + len(sent))
    client = Client(base)
    client.login("amina", PASSWORD)
    # review each of these studies with its true class, through the form (the internal id from the database)
    from cxr_edge.node.state import State

    state = State(load_config_data(config))
    try:
        links = state.study_links()
    finally:
        state.close()
    truth = {study: label for _, label, study in sent}
    reviewed = 0
    for study, link in links.items():
        if study not in truth:
            continue
        page = client.request(f"/study/{link}")[2]
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        findings = {name: truth[study] for name in re.findall(r'name="(finding-\d+)"', page)}
        status, _, _ = client.request(f"/study/{link}/review", {"csrf": token, "kind": "review", **findings})
        assert status == 303
        reviewed += 1
    assert reviewed == len(sent)
    # a confirmatory result names a label: it wins over the reader's finding
    first_normal = next(study for study in links if truth.get(study) == "normal")
    token = client.csrf(f"/study/{links[first_normal]}")
    assert client.request(f"/study/{links[first_normal]}/review", {"csrf": token, "kind": "confirmation",
                                                                   "code": "pcr_positive"})[0] == 303
    moved = next(p for p, label, study in sent if study == first_normal)
    (folder / "covid19").mkdir(exist_ok=True)
    moved.rename(folder / "covid19" / f"confirmed-{moved.name}")

    runner = CliRunner()
    from_reviews = runner.invoke(main, ["calibrate", "--from-reviews", "--config", str(config), "--out",
                                        str(tmp_path / "a.json"), "--format", "json"])
    on_folder = runner.invoke(main, ["calibrate", str(folder), "--model", str(edge_bundle), "--out",
                                     str(tmp_path / "b.json"), "--format", "json"])
    assert from_reviews.exit_code == on_folder.exit_code == 2  # too few images: both say so, neither writes
    assert "too few reviewed images to set a threshold" in from_reviews.output
    assert not (tmp_path / "a.json").exists()
    ours, theirs = (json.loads(r.stdout) for r in (from_reviews, on_folder))
    assert ours["figures"]["images"] == len(sent)
    ours.pop("created"), theirs.pop("created")
    assert ours == theirs
    exported = runner.invoke(main, ["reviews", "--config", str(config), "--format", "csv"])
    assert exported.exit_code == 0
    lines = [line for line in exported.stdout.splitlines() if not line.startswith("#")]
    assert len(lines) == 1 + len(sent) and "pcr_positive" in exported.stdout and "PID-0042" not in exported.stdout
    with_ids = runner.invoke(main, ["reviews", "--config", str(config), "--format", "json", "--with-identifiers"])
    assert json.loads(with_ids.stdout)["reviews"][0]["patient_id"] == "PID-0042"


def load_config_data(config):
    from cxr_edge.node.config import load_config

    return load_config(config).data


def test_the_server_s_own_answers_carry_the_security_headers_and_a_slow_request_is_cut_off(screen):
    """A malformed request gets uvicorn's own 400, with the headers every answer has; a request for another host
    name gets a 400 too; a request sent a few bytes and then held is closed by the server after READ_SECONDS."""
    import socket

    from cxr_edge.web.server import READ_SECONDS

    node, base, _ = screen
    host, port = base.removeprefix("http://").split(":")

    def answer(request: bytes) -> str:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    break
            return data.decode("latin-1").lower()

    malformed = answer(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
    assert malformed.startswith("http/1.1 400") and "content-security-policy: default-src 'self'" in malformed
    assert "x-frame-options: deny" in malformed
    elsewhere = answer(b"GET /login HTTP/1.1\r\nHost: rebinding.example\r\nConnection: close\r\n\r\n")
    assert elsewhere.startswith("http/1.1 400") and "x-frame-options: deny" in elsewhere
    with socket.create_connection((host, int(port)), timeout=READ_SECONDS + 10) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /login HTTP/1.1\r\nHo")  # and nothing more
        assert slow.recv(1024) == b""  # closed by the server, not by this test's timeout
        waited = time.monotonic() - started
    assert READ_SECONDS - 1 <= waited <= READ_SECONDS + 5, waited
