"""The node's state, as one layer: results as one record with coded reasons, a database of the version before
migrated intact, studies keyed by a number VACUUM cannot change, the schema's cascades on, nested transactions
that cannot deadlock, and the leading image of a study decided once."""

import csv
import io
import json
import sqlite3
import threading

import pytest

from cxr_edge.bundle.load import load_bundle

from cxr_edge.node.state import DATABASE, MIGRATIONS, SCHEMA_VERSION, Instance, State, StudyHeader
from cxr_edge.node.worker import Worker
from cxr_edge.reasons import CATALOGUE, Entry, Reason, from_json, from_text
from cxr_edge.reports.formats import to_csv, to_json
from cxr_edge.run.classify import Classifier, summarize
from cxr_edge.run.result import Result
from cxr_edge.web import accounts, worklist
from cxr_edge.web.app import _reason_words

# One example of each code's parameters, as the box makes them.
EXAMPLES = {
    "too_small": {"width": 60, "height": 80, "min_side": 128},
    "aspect_ratio": {"aspect": 3.0},
    "flat": {"spread": 4},
    "not_frontal": {}, "body_part": {}, "modality": {}, "for_processing": {}, "unverified": {},
    "ood": {"score": 9.1234, "limit": 3.0},
    "low_confidence": {"label": "covid19", "p": 0.443, "floor": 0.6},
    "screen_positive": {"p_abnormal": 0.2713, "threshold": 0.2518, "site": True},
    "other": {"text": "a reason an older version wrote"},
}
NORMAL = (0.9, 0.04, 0.03, 0.03)
COVID = (0.02, 0.03, 0.05, 0.9)


def _instance(state: State, uid: str, study: str, received: float) -> Instance:
    instance = Instance(uid, "1.2.840.10008.5.1.4.1.1.1.1", study, study + ".1", "dicom:UNIT", f"images/{uid}.dcm",
                        received)
    state.add_instance(instance, StudyHeader(patient_id=f"P-{study}"))
    return instance


def test_the_catalogue_has_an_example_of_every_code():
    assert set(EXAMPLES) == set(CATALOGUE)


@pytest.mark.parametrize("code", sorted(EXAMPLES))
def test_every_reason_code_has_words_and_round_trips_through_the_database_csv_and_json(code, tmp_path, edge_bundle):
    reasons = (Reason(code, EXAMPLES[code]), Reason("low_confidence", EXAMPLES["low_confidence"]))
    result = Result("images/1.1.dcm", "covid19", COVID, True, reasons, ood_score=9.1234)
    words, plain = reasons[0].words(), reasons[0].plain()
    assert words and "{" not in words and words in result.reason
    assert plain and "{" not in plain and "threshold" not in plain and "floor" not in plain  # the screen's words

    state = State(tmp_path / "data")
    _instance(state, "1.1", "2.1", 1000.0)
    state.record_result("1.1", result)
    stored = state.study_images("2.1")[0][1]
    state.close()
    assert stored == result and stored.reason == result.reason

    classifier = Classifier(load_bundle(edge_bundle))
    rows = [r for r in csv.DictReader(line for line in io.StringIO(to_csv([result], classifier))
                                      if not line.startswith("#"))]
    assert rows[0]["reason_codes"] == f"{code};low_confidence" and rows[0]["reason"] == result.reason
    data = json.loads(to_json([result], summarize([result], 1.0), classifier))["results"][0]
    assert data["reason_codes"] == f"{code};low_confidence" and data["reason"] == result.reason


def test_a_reworded_sentence_changes_no_stored_code(tmp_path, monkeypatch):
    """Today's words read back as the same codes; and once stored, rewording a reason changes what a person reads,
    never what the database holds (before codes, a reworded sentence was counted as 'other')."""
    reasons = tuple(Reason(code, params) for code, params in EXAMPLES.items() if code != "other")
    read_back = from_text("; ".join(r.words() for r in reasons))  # numbers to the places the words give
    assert [(r.code, r.words()) for r in read_back] == [(r.code, r.words()) for r in reasons]

    state = State(tmp_path / "data")
    _instance(state, "1.1", "2.1", 1000.0)
    state.record_result("1.1", Result("images/1.dcm", "covid19", COVID, True, reasons))
    before = state.query("SELECT reasons FROM results")[0]["reasons"]
    old = CATALOGUE["low_confidence"]
    monkeypatch.setitem(CATALOGUE, "low_confidence", Entry(old.short, old.meaning, lambda p: (
        f"the AI is unsure: {p['p']:.0%} for {p['label']}, needs {p['floor']:.0%}")))
    state.record_result("1.1", Result("images/1.dcm", "covid19", COVID, True, reasons))
    after = state.query("SELECT reasons FROM results")[0]["reasons"]
    shown = state.study_images("2.1")[0][1]
    state.close()
    assert after == before and [r.code for r in from_json(after)] == [r.code for r in reasons]
    assert "the AI is unsure: 44% for covid19, needs 60%" in shown.reason


def _version_4_database(data):
    """A node database as version 4 of the schema wrote it, from that version's own DDL: two studies (one a
    frontal film and its referred lateral view), results with reasons in words, a review, a user with a token."""
    data.mkdir()
    db = sqlite3.connect(data / DATABASE)
    db.executescript("".join(MIGRATIONS[:4]) + "PRAGMA user_version = 4;")
    frontal_reason = ("low confidence: probability of COVID-19 0.512, below the confidence floor 0.600; "
                      "a sentence no version of cxr-edge wrote")
    lateral_reason = ("not a frontal view (the DICOM header gives a lateral or oblique view position): the models "
                      "read frontal PA/AP chest radiographs")
    for n, (study, uid, reason, refer, probs) in enumerate([
            ("2.1", "1.1", "", 0, NORMAL), ("2.2", "1.2", frontal_reason, 1, (0.4, 0.04, 0.05, 0.51)),
            ("2.2", "1.3", lateral_reason, 1, (0.01, 0.01, 0.01, 0.97))]):
        db.execute("INSERT INTO instances (sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid, "
                   "source, path, received, state) VALUES (?, '1.2', ?, ?, 'dicom:UNIT', ?, ?, 'classified')",
                   (uid, study, study + ".1", f"images/{uid}.dcm", 1000.0 + n))
        db.execute("INSERT OR IGNORE INTO studies (study_instance_uid, patient_id, first_received, last_received, "
                   "label, refer, final) VALUES (?, ?, ?, ?, 'covid19', 1, 1)", (study, f"P-{study}", 1000.0, 1002.0))
        db.execute("INSERT INTO results (sop_instance_uid, classified, label, p_normal, p_lung_opacity, "
                   "p_viral_pneumonia, p_covid19, refer, reason, error) VALUES (?, ?, 'covid19', ?, ?, ?, ?, ?, ?, "
                   "'')", (uid, 1003.0, *probs, refer, reason))
    db.execute("INSERT INTO reviews (study_instance_uid, user, time, kind, agree, finding) VALUES "
               "('2.2', 'amina', 1010.0, 'review', 1, 'covid19')")
    db.execute("INSERT INTO users VALUES ('amina', 'reviewer', 'x', 1.0)")
    db.execute("INSERT INTO tokens VALUES ('h', 'amina', 1.0)")
    links = dict(db.execute("SELECT study_instance_uid, rowid FROM studies"))
    db.commit()
    db.close()
    return links


def test_a_version_4_database_migrates_with_its_studies_results_reviews_and_links(tmp_path):
    links = _version_4_database(tmp_path / "data")
    state = State(tmp_path / "data")
    assert state.query("PRAGMA user_version")[0]["user_version"] == SCHEMA_VERSION
    for uid, link in links.items():  # a link made before leads to the same study
        assert worklist.study(state, link)["study_instance_uid"] == uid
    assert worklist.study(state, max(links.values()) + 1) is None  # and no number leads elsewhere
    frontal, lateral = [r for _, r in state.study_images("2.2")]
    assert frontal.reasons == (Reason("low_confidence", {"label": "covid19", "p": 0.512, "floor": 0.6}),
                               Reason("other", {"text": "a sentence no version of cxr-edge wrote"}))
    assert lateral.reason_codes == ("not_frontal",) and lateral.probs[3] == 0.97
    assert state.study("2.2")["lead_sop_instance_uid"] == "1.2"  # the frontal film leads its lateral view
    assert state.query("SELECT count(*) AS n FROM reviews WHERE study_instance_uid = '2.2'")[0]["n"] == 1
    assert state.query("SELECT user FROM tokens")[0]["user"] == "amina"
    for table in ("results", "stick_results"):  # no words stored
        assert "reason" not in {row["name"] for row in state.query(f"PRAGMA table_info({table})")}
    state.close()


def test_vacuum_after_deleting_a_study_leaves_every_other_link_on_its_study(tmp_path):
    """SQLite may renumber the implicit rowid of a table without an INTEGER PRIMARY KEY on VACUUM (its own
    documentation; 3.40 happens not to): studies have one, and links use it."""
    state = State(tmp_path / "data")
    for n in range(5):
        _instance(state, f"1.{n}", f"2.{n}", 1000.0 + n)
    columns = {row["name"]: row for row in state.query("PRAGMA table_info(studies)")}
    assert columns["id"]["type"] == "INTEGER" and columns["id"]["pk"] == 1
    links = {row["study_instance_uid"]: row["id"] for row in state.query("SELECT id, study_instance_uid FROM studies")}
    with state.transaction() as db:
        db.execute("DELETE FROM instances WHERE study_instance_uid = '2.1'")
        db.execute("DELETE FROM studies WHERE study_instance_uid = '2.1'")
    state.query("VACUUM")
    for uid, link in links.items():
        found = worklist.study(state, link)
        assert (found and found["study_instance_uid"]) == (None if uid == "2.1" else uid)
    state.close()


def test_deleting_a_user_removes_their_tokens_and_sessions_by_the_schemas_cascade(tmp_path):
    state = State(tmp_path / "data")
    accounts.add_user(state, "amina", "reviewer", "a long enough password")
    accounts.new_token(state, "amina")
    assert isinstance(accounts.log_in(state, "amina", "a long enough password", "127.0.0.1"), tuple)
    with state.transaction() as db:  # the users row alone: the schema does the rest
        db.execute("DELETE FROM users WHERE name = 'amina'")
    assert state.query("SELECT (SELECT count(*) FROM tokens) + (SELECT count(*) FROM sessions) AS n")[0]["n"] == 0
    state.close()


def test_a_query_inside_a_transaction_does_not_deadlock_and_a_nested_one_is_a_savepoint(tmp_path):
    state = State(tmp_path / "data")
    seen = []

    def nested():
        with state.transaction() as db:
            db.execute("INSERT INTO events (time, kind, detail) VALUES (1, 'outer', '')")
            seen.append(state.query("SELECT count(*) AS n FROM events")[0]["n"])
            with pytest.raises(RuntimeError):
                with state.transaction() as inner:
                    inner.execute("INSERT INTO events (time, kind, detail) VALUES (2, 'inner', '')")
                    raise RuntimeError("undo the inner part only")
            state.event("kept", "a write inside the transaction")

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "deadlocked"
    assert seen == [1]
    assert [row["kind"] for row in state.query("SELECT kind FROM events ORDER BY id")] == ["outer", "kept"]
    state.close()


def test_the_frontal_films_reasons_stand_beside_its_thumbnail_when_the_lateral_view_is_referred(tmp_path):
    """The worklist showed the thumbnail of one image (the highest probability of an abnormal finding) and the
    reasons of another (a referred one first): a lateral view's "not a frontal view" beside the frontal film."""
    state = State(tmp_path / "data")
    frontal = Result("images/f.dcm", "covid19", (0.1, 0.05, 0.05, 0.8), False,
                     (Reason("screen_positive", EXAMPLES["screen_positive"]),))
    lateral = Result("images/l.dcm", "covid19", (0.02, 0.01, 0.01, 0.96), True, (Reason("not_frontal"),))
    for uid, result in (("1.1", frontal), ("1.2", lateral)):
        _instance(state, uid, "2.1", 1000.0)
        state.record_result(uid, result)
    Worker(None, state, stable_seconds=0, log=lambda m: None)._settle_studies()
    row = worklist.worklist(state, "all", 0)[0][0]
    images = {image["sop_instance_uid"]: image["id"] for image in worklist.study(state, row["id"])["images"]}
    assert row["thumb"] == images["1.1"]
    assert _reason_words(row["reasons"]) == [reason.plain() for reason in frontal.reasons]
    assert (row["label"], row["refer"]) == ("covid19", 0)
    state.close()
