"""Shadow mode: a candidate bundle beside the active one, its comparison on the clinic's reviews, promotion and
rollback (cxr_edge.node.candidate, cxr_edge.site.compare, cxr_edge.node.bundles)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from cxr_edge.cli import main
from cxr_edge.labels import LABELS
from cxr_edge.models.cascade import combine
from cxr_edge.node.bundles import ACTIVE, effective
from cxr_edge.node.candidate import sampled, stage_from_stick
from cxr_edge.node.config import load_config
from cxr_edge.node.state import Instance, State, StudyHeader
from cxr_edge.run.result import Result
from cxr_edge.site.compare import compare

from tests.bundle_edits import edited_copy

RNG_SEED = 7
MARGINS = {"sensitivity": 0.05, "specificity": 0.05, "agreement with readers": 0.05}


def _reviews(n_abnormal: int, n_normal: int, candidate_noise: float, seed: int = RNG_SEED):
    """Truth and both bundles' probabilities for reviewed images: the active bundle separates abnormal from normal
    well; the candidate's scores are the active's plus noise of `candidate_noise` (0: the same), or, negative,
    closer to the truth (better)."""
    rng = np.random.default_rng(seed)
    truth = [str(rng.choice(LABELS[1:])) for _ in range(n_abnormal)] + ["normal"] * n_normal
    abnormal = np.array([t != "normal" for t in truth])
    centre = np.where(abnormal, 0.75, 0.25)
    active = np.clip(centre + rng.normal(0, 0.15, len(truth)), 0.001, 0.999)
    if candidate_noise >= 0:
        candidate = np.clip(active + rng.normal(0, candidate_noise, len(truth)) if candidate_noise else active,
                            0.001, 0.999)
    else:  # halfway to the truth: better separated
        candidate = np.clip((active + np.where(abnormal, 0.95, 0.05)) / 2, 0.001, 0.999)
    stage2 = np.array([[0.8 if LABELS[1 + k] == t else 0.1 for k in range(3)] if t != "normal" else [0.4, 0.3, 0.3]
                       for t in truth])
    as_probs = lambda p: np.concatenate([(1 - p)[:, None], p[:, None] * stage2], 1)  # noqa: E731
    return truth, as_probs(active), as_probs(candidate)


@pytest.mark.parametrize("noise,verdict", [(-1, "PASS"), (0.0, "PASS"), (0.45, "FAIL")],
                         ids=["candidate-better", "candidate-same", "candidate-worse"])
def test_the_comparison_passes_a_candidate_as_good_or_better_and_fails_a_worse_one(noise, verdict):
    truth, active, candidate = _reviews(150, 250, noise)
    report = compare(truth, active, candidate, (0.5, 0.5), MARGINS, {"ready": True})
    assert report["verdict"] == verdict, report["checks"]
    if verdict == "FAIL":
        assert any(c["verdict"] == "FAIL" and c["estimate"] > 0.05 for c in report["checks"])
        assert report["mcnemar"]["right_only_active"] > report["mcnemar"]["right_only_candidate"]


def test_too_few_reviews_are_inconclusive_and_say_how_many_more_would_settle_it():
    truth, active, candidate = _reviews(12, 20, 0.0)
    report = compare(truth, active, candidate, (0.5, 0.5), MARGINS,
                     {"ready": False, "floors": {"abnormal": 24, "normal": 93}})
    assert report["verdict"] == "INCONCLUSIVE"
    # calibration alone wants 93 normal ones, at this mix (20 of 32) about 149 reviewed images: 117 more
    assert report["more_reviews"] >= 149 - 32


def test_two_equally_good_bundles_are_seldom_failed_on_a_clinic_s_few_hundred_reviews():
    """Each threshold is calibrated on the reviews, so the intervals must carry its uncertainty (chosen again in each
    resample): with the thresholds held fixed, 24% of simulated clinics of 200 reviews FAILed one of two equally good
    bundles (benchmarks.candidate_power); now about 1%. 20 seeded clinics: at most 2 may FAIL (at 3%, the chance of
    more than 2 in 20 is under 2%)."""
    from benchmarks.candidate_power import verdict

    seen = [verdict(200, 0.3, 0.8, seed) for seed in range(20)]
    assert seen.count("FAIL") <= 2, seen


def test_the_sample_of_images_is_a_share_drawn_from_their_uids():
    uids = [f"1.2.826.0.1.3680043.8.498.{i}" for i in range(4000)]
    share = sum(sampled(uid, 0.5) for uid in uids) / len(uids)
    assert abs(share - 0.5) < 0.03  # binomial: 4000 draws, sd 0.008; 0.03 is nearly four of them
    assert [sampled(u, 0.5) for u in uids[:50]] == [sampled(u, 0.5) for u in uids[:50]]  # the same every time
    assert all(sampled(u, 1.0) for u in uids[:50])


# a node's database with reviews, for the command line

def _clinic(tmp_path, edge_bundle, noise: float, n_abnormal: int, n_normal: int):
    """A node configuration with bundle A active and B (the same model, another manifest) as candidate, and a
    database where both classified reviewed images with the given scores (as the node would have stored them)."""
    from cxr_edge.bundle.load import load_bundle

    candidate = edited_copy(edge_bundle, tmp_path / "candidate-bundle",
                            lambda m: m.update(created="2026-12-01T00:00:00Z"))
    config = _node_config(tmp_path, edge_bundle, f'model = "{candidate}"')
    shas = [load_bundle(path).manifest_sha256 for path in (edge_bundle, candidate)]
    truth, active, shadow = _reviews(n_abnormal, n_normal, noise)
    state = State(tmp_path / "data")
    try:
        for i, label in enumerate(truth):
            study, uid = f"1.2.826.0.1.3680043.8.498.9{i:04d}", f"1.2.826.0.1.3680043.8.498.9{i:04d}.1.1"
            state.add_instance(Instance(uid, "1.2.840.10008.5.1.4.1.1.1.1", study, study + ".1", "dicom:X",
                                        f"images/{study}/{uid}.dcm", time.time()), StudyHeader(patient_id=f"P{i}"))
            for probs, record in ((active[i], lambda r: state.record_result(uid, r, bundle=shas[0])),
                                  (shadow[i], lambda r: state.record_shadow(uid, shas[1], r))):
                index = combine(1 - probs[:1], (probs[1:] / probs[1:].sum())[None], 0.5)[0][0]
                record(Result(f"images/{study}/{uid}.dcm", LABELS[index], tuple(float(p) for p in probs)))
            state.append_reviews(study, "amina", [(uid, "review", None, label, "", "")])
    finally:
        state.close()
    return config, candidate


def test_promote_is_refused_on_fail_and_changes_nothing(tmp_path, edge_bundle):
    config, _ = _clinic(tmp_path, edge_bundle, 0.45, 60, 120)
    shown = CliRunner().invoke(main, ["candidate", "--config", str(config)])
    assert shown.exit_code == 1 and "FAIL: worse than the active bundle" in shown.output, shown.output
    report = json.loads(CliRunner().invoke(main, ["candidate", "--config", str(config), "--format", "json"]).stdout)
    assert report["verdict"] == "FAIL" and report["counts"]["candidate_reviewed"] == 180
    assert [c["name"] for c in report["checks"]] == ["sensitivity", "specificity", "agreement with readers"]
    assert "images classified: active 180, candidate 180 (of which 180 reviewed)" in shown.output
    refused = CliRunner().invoke(main, ["candidate", "promote", "--config", str(config)])
    assert refused.exit_code == 1 and "not promoted: the verdict is FAIL" in refused.output
    assert not (tmp_path / "data" / ACTIVE).exists()


def test_too_few_reviews_refuse_promotion_and_say_how_many_more(tmp_path, edge_bundle):
    config, _ = _clinic(tmp_path, edge_bundle, 0.0, 8, 10)
    shown = CliRunner().invoke(main, ["candidate", "--config", str(config)])
    assert shown.exit_code == 1 and "INCONCLUSIVE: 18 reviewed images cannot tell; about" in shown.output
    refused = CliRunner().invoke(main, ["candidate", "promote", "--config", str(config)])
    assert refused.exit_code == 1 and not (tmp_path / "data" / ACTIVE).exists()


def test_promote_on_pass_with_a_new_site_file_then_rollback_restores_the_first(tmp_path, edge_bundle):
    from cxr_edge.node.serve import open_classifier

    config_path, candidate = _clinic(tmp_path, edge_bundle, 0.0, 60, 120)
    config = load_config(config_path)
    promoted = CliRunner().invoke(main, ["candidate", "promote", "--config", str(config_path), "--user", "dr-a"])
    assert promoted.exit_code == 0, promoted.output
    assert "PASS: not worse than the active bundle" in promoted.output and "Restart the node" in promoted.output
    active = effective(config)
    assert active.model.parent == tmp_path / "data" / "bundles" and active.site is not None
    classifier = open_classifier(active)  # the site file is bound to the promoted bundle, calibrated on the reviews
    assert classifier.site is not None and classifier.bundle.manifest_sha256 != _sha(edge_bundle)
    checked = CliRunner().invoke(main, ["serve", "--config", str(config_path), "--check"])
    assert f"model: {active.model}" in checked.output and checked.exit_code == 0, checked.output
    state = State(config.data)
    try:
        trail = state.audit_trail()
    finally:
        state.close()
    assert any(row["action"] == "promoted a candidate bundle" and row["user"] == "dr-a" for row in trail)

    back = CliRunner().invoke(main, ["candidate", "rollback", "--config", str(config_path), "--user", "dr-a"])
    assert back.exit_code == 0, back.output
    restored = effective(config)
    assert (restored.model, restored.site) == (edge_bundle, None)
    assert active.model.exists() and active.site.exists()  # kept: rolling forward again needs no new copy


def test_promote_on_fail_with_an_override_records_who_and_why(tmp_path, edge_bundle):
    config_path, _ = _clinic(tmp_path, edge_bundle, 0.45, 60, 120)
    done = CliRunner().invoke(main, ["candidate", "promote", "--config", str(config_path), "--user", "dr-b",
                                     "--override", "publisher recall of the active bundle"])
    assert done.exit_code == 0, done.output
    state = State(tmp_path / "data")
    try:
        row = next(r for r in state.audit_trail() if r["action"] == "promoted a candidate bundle")
    finally:
        state.close()
    assert row["user"] == "dr-b" and "verdict FAIL; override: publisher recall of the active bundle" in row["detail"]


def _sha(bundle) -> str:
    from cxr_edge.bundle.load import load_bundle

    return load_bundle(bundle).manifest_sha256


@pytest.mark.slow
def test_a_sigkill_at_any_moment_of_a_promotion_leaves_one_bundle_with_its_own_site_file(tmp_path, edge_bundle):
    from cxr_edge.node.serve import open_classifier

    config_path, _ = _clinic(tmp_path, edge_bundle, 0.0, 60, 120)
    config = load_config(config_path)
    command = [sys.executable, "-c", "from cxr_edge.cli import main; main()", "candidate", "promote", "--config",
               str(config_path)]
    started = time.monotonic()
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
    whole = time.monotonic() - started
    (config.data / ACTIVE).unlink()  # back to the first bundle: the kills below interrupt promotions of it
    for cut in np.linspace(0.3, 1.0, 8) * whole:
        running = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(cut)
        running.send_signal(signal.SIGKILL)
        running.wait(timeout=30)
        active = effective(config)
        assert (active.model, active.site) == (edge_bundle, None) or active.model.parent.name == "bundles"
        classifier = open_classifier(active)  # a site file of another bundle would be refused here
        assert (classifier.site is None) == (active.model == edge_bundle)
        (config.data / ACTIVE).unlink(missing_ok=True)


def test_an_unsigned_candidate_on_a_stick_is_ignored_with_a_log_line(tmp_path, edge_bundle):
    """With no trusted key installed the box runs unsigned bundles (with a warning); a stick never stages one."""
    from cxr_edge.bundle.archive import write_archive

    config_path = _stick_config(tmp_path, edge_bundle)
    stick = tmp_path / "stick"
    (stick / "cxr-edge-candidate").mkdir(parents=True)
    write_archive(edge_bundle, stick / "cxr-edge-candidate" / "new.cxrb")
    lines = []
    assert stage_from_stick(load_config(config_path), stick, lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("candidate new.cxrb on stick stick ignored: not signed by a key of "
                                                    "the trust folder (the bundle is unsigned"), lines
    assert not (tmp_path / "data" / "candidate").exists()


def test_a_candidate_on_a_stick_signed_by_a_trusted_key_is_staged(tmp_path, edge_bundle, monkeypatch):
    import shutil

    from cxr_convert.signing import keygen, load_private_key, sign_bundle

    from cxr_edge.bundle.archive import write_archive

    keys = {name: keygen(tmp_path / name) for name in ("release", "stranger")}
    trust = tmp_path / "trusted-keys"
    trust.mkdir()
    shutil.copy(keys["release"][1], trust / "release.pub")
    monkeypatch.setenv("CXR_EDGE_TRUSTED_KEYS", str(trust))
    config = load_config(_stick_config(tmp_path, edge_bundle))
    for signer, staged in (("stranger", False), ("release", True)):
        copy = shutil.copytree(edge_bundle, tmp_path / f"signed-{signer}")
        sign_bundle(copy, load_private_key(keys[signer][0]), signer)
        stick = tmp_path / f"stick-{signer}"
        (stick / "cxr-edge-candidate").mkdir(parents=True)
        write_archive(copy, stick / "cxr-edge-candidate" / "new.cxrb")
        lines = []
        result = stage_from_stick(config, stick, lines.append)
        assert (result is not None) == staged, lines
        assert len(lines) == 1 and ("staged" in lines[0] if staged else "ignored" in lines[0]), lines


def _stick_config(tmp_path, edge_bundle):
    return _node_config(tmp_path, edge_bundle, 'stick_folder = "cxr-edge-candidate"')


def _node_config(tmp_path, edge_bundle, candidate: str):
    """node.toml with bundle A active and the [candidate] line given."""
    path = tmp_path / "node.toml"
    path.write_text(f'model = "{edge_bundle}"\ndata = "{tmp_path / "data"}"\n[dicom]\nallowed_callers = ["X"]\n'
                    f'[candidate]\n{candidate}\n')
    return path


@pytest.mark.slow
def test_a_node_runs_a_candidate_beside_the_active_bundle_and_never_shows_or_sends_its_results(
        tmp_path, edge_bundle, synth_small, monkeypatch):
    """Bundle A active, B the candidate; images from storescu; reviews through the screen's form: B classifies every
    image, its results are stored with it, and none reaches the worklist, the study page, the PACS or the EHR."""
    import re

    from cxr_edge.bundle.load import load_bundle

    from tests.edge.node.test_send import FhirEndpoint, Orthanc, _outbox, _send_config, _wait
    from tests.edge.web.test_web import PASSWORD, Client
    from tests.node_harness import Node, _free_port, _radiographs, _store

    monkeypatch.setenv("CXR_EDGE_FHIR_TOKEN", "secret-token-1")
    monkeypatch.setenv("CXR_EDGE_PASSWORD", PASSWORD)
    candidate = edited_copy(edge_bundle, tmp_path / "candidate-bundle",
                            lambda m: m.update(created="2026-12-01T00:00:00Z"))
    node_port, web_port = _free_port(), _free_port()
    orthanc = Orthanc(tmp_path / "orthanc", {"CXREDGE": node_port}).start()
    fhir = FhirEndpoint().start()
    config = _send_config(tmp_path, edge_bundle, node_port, orthanc, fhir)
    with config.open("a") as fh:
        fh.write(f'[web]\nenabled = true\nport = {web_port}\n[candidate]\nmodel = "{candidate}"\n')
    added = CliRunner().invoke(main, ["user", "add", "amina", "--role", "reviewer", "--config", str(config)])
    assert added.exit_code == 0, added.output
    node = Node(config)
    try:
        node.start()
        assert "candidate candidate-bundle runs beside the active bundle on 100% of images" in node.text()
        studies = [f"1.2.826.0.1.3680043.8.498.40{i}" for i in range(2)]
        files = [f for i, study in enumerate(studies)
                 for f in _radiographs(tmp_path / f"unit{i}", synth_small, 3, study=study)]
        assert _store(node_port, files).returncode == 0
        node.wait_classified(len(files))
        shas = [load_bundle(path).manifest_sha256 for path in (edge_bundle, candidate)]
        state = State(tmp_path / "data")

        def counts():
            return state.shadow_counts(shas[1])
        try:
            _wait(lambda: counts()["candidate"] == len(files), 120, "the candidate's results", node)
            assert {r["bundle"] for r in state.query("SELECT bundle FROM results")} == {shas[0]}
            links = state.study_links()
        finally:
            state.close()
        # every record sent is the active bundle's: one SR and one heatmap per image, one report per image
        _wait(lambda: len(fhir.posts) == 2 and all(i["state"] == "sent" for i in _outbox(config).values()), 120,
              "the records sent", node)
        for study in studies:
            held = orthanc.study(study)
            assert [len(uids) for uids in held.values()] == [3, 3], held
        assert sum(e["resource"]["resourceType"] == "DiagnosticReport" for _, _, body in fhir.posts
                   for e in body["entry"]) == len(files)
        # reviews through the form; the screen never names the candidate
        client = Client(f"http://127.0.0.1:{web_port}")
        client.login("amina", PASSWORD)
        for study in studies:
            page = client.request(f"/study/{links[study]}")[2]
            assert "candidate-bundle" not in page and "edge, not yet set for this clinic" in page
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            findings = {name: "normal" for name in re.findall(r'name="(finding-\d+)"', page)}
            assert client.request(f"/study/{links[study]}/review", {"csrf": token, "kind": "review",
                                                                    **findings})[0] == 303
        assert "candidate-bundle" not in client.request("/worklist")[2]
        shown = CliRunner().invoke(main, ["candidate", "--config", str(config)])
        assert "images classified: active 6, candidate 6 (of which 6 reviewed)" in shown.output, shown.output
        assert shown.exit_code == 1 and "INCONCLUSIVE" in shown.output  # 6 reviewed normal images: too few
    finally:
        for stop in (node.stop if node.process and node.process.poll() is None else None, orthanc.stop, fhir.stop):
            if stop:
                stop()


@pytest.mark.slow
def test_a_node_ignores_a_stick_s_unsigned_candidate_and_stages_a_trusted_one(tmp_path, edge_bundle, monkeypatch):
    """Through the node's stick watcher: the log says why a stick's candidate is ignored, and a trusted one is copied
    into the data folder, to run from the next start."""
    import shutil

    from cxr_convert.signing import keygen, load_private_key, sign_bundle

    from cxr_edge.bundle.archive import write_archive

    from tests.node_harness import Node, _config, _free_port

    keys = keygen(tmp_path / "release")
    trust = tmp_path / "trusted-keys"
    trust.mkdir()
    shutil.copy(keys[1], trust / "release.pub")
    signed = shutil.copytree(edge_bundle, tmp_path / "active-signed")
    sign_bundle(signed, load_private_key(keys[0]), "release")  # the active bundle too: keys are installed
    media = tmp_path / "media"
    media.mkdir()
    config = _config(tmp_path, signed, _free_port())
    text = config.read_text().replace(f'model = "{signed}"', f'model = "{signed}"\ntrusted_keys = "{trust}"')
    config.write_text(text + f'[usb]\nenabled = true\nwatch = "{media}"\nmount_points_only = false\n'
                      '[candidate]\nstick_folder = "cxr-edge-candidate"\n')
    node = Node(config).start()
    try:
        unsigned = tmp_path / "staging-unsigned" / "cxr-edge-candidate"
        unsigned.mkdir(parents=True)
        write_archive(edge_bundle, unsigned / "v2.cxrb")
        unsigned.parent.rename(media / "STICK1")
        deadline = time.monotonic() + 30
        while "candidate v2.cxrb on stick STICK1 ignored" not in node.text():
            assert time.monotonic() < deadline, node.text()
            time.sleep(0.2)
        assert not (tmp_path / "data" / "candidate").exists()
        trusted = tmp_path / "staging-signed" / "cxr-edge-candidate"
        trusted.mkdir(parents=True)
        candidate = edited_copy(signed, tmp_path / "v3", lambda m: m.update(created="v3"))
        sign_bundle(candidate, load_private_key(keys[0]), "release")
        write_archive(candidate, trusted / "v3.cxrb")
        trusted.parent.rename(media / "STICK2")
        while "candidate v3.cxrb from stick STICK2 staged (signed by 'release')" not in node.text():
            assert time.monotonic() < deadline + 30, node.text()
            time.sleep(0.2)
        assert len(list((tmp_path / "data" / "candidate").glob("*.cxrb"))) == 1
        assert node.stop() == 0
        before = len(node.text())
        node.start()  # the staged candidate runs from the next start
        staged = next((tmp_path / "data" / "candidate").glob("*.cxrb")).name
        assert f"candidate {staged} runs beside the active bundle" in node.text()[before:], node.text()[before:]
    finally:
        if node.process.poll() is None:
            node.stop()
