"""Weekly monitoring of the clinic node (the status page's chart and `cxr-edge results --summary`): the drift
rule of every classify run (exact binomial test, p < 0.001, at least 30 images) applied week by week; and the
screen's login limit under parallel tries."""

import json
import time
from datetime import datetime, timedelta

from click.testing import CliRunner

from cxr_edge.cli import main
from cxr_edge.node.state import Instance, State, StudyHeader
from cxr_edge.run.result import Result
from cxr_edge.web.monitoring import chart, weekly


def _fill(state: State, monday: datetime, images: int, abnormal: int, reviews: int = 0, agreed: int = 0,
          start: int = 0) -> None:
    """`images` classified images received on `monday`, `abnormal` of them labelled covid19, and reviews."""
    t = monday.timestamp() + 3600
    for i in range(start, start + images):
        uid, study = f"1.2.3.{i}", f"1.2.9.{i}"
        label = "covid19" if i - start < abnormal else "normal"
        state.add_instance(Instance(uid, "1.2", study, study + ".1", "dicom:X", f"images/{uid}.dcm", t), StudyHeader())
        probs = (0.2, 0.0, 0.0, 0.8) if label != "normal" else (0.9, 0.0, 0.0, 0.1)
        state.record_result(uid, Result(f"images/{uid}.dcm", label, probs))
        state.set_study(study, uid, label, False, True, t)
        if i - start < reviews:
            state.append_review(study, "amina", "review", i - start < agreed, label, "", "", at=t + 60, image=uid)


def test_a_week_far_from_the_expected_share_is_warned_about_and_a_usual_one_is_not(tmp_path):
    state = State(tmp_path / "data")
    usual = datetime(2026, 11, 2)  # a Monday
    _fill(state, usual, 40, 12, reviews=30, agreed=27)  # 30% abnormal, as expected
    _fill(state, usual + timedelta(days=7), 40, 36, start=100, reviews=30, agreed=12)  # 90%: far outside
    weeks = weekly(state, {"flagged_abnormal": 0.3}, "this site's calibration")
    state.close()
    assert [w.week for w in weeks] == ["2026-W45", "2026-W46"]
    assert (weeks[0].images, weeks[0].abnormal, weeks[0].reviews, weeks[0].agreed) == (40, 12, 30, 27)
    assert weeks[0].warnings == []
    assert len(weeks[1].warnings) == 2  # flagged abnormal, and the readers agreeing far less than before
    assert "Week 2026-W46: the box flagged 36 of 40 images abnormal (90%), far from the 30% expected" in \
        weeks[1].warnings[0]
    assert "the readers agreed with the box on 12 of 30 images (40%), far from the 90% of the weeks before" in \
        weeks[1].warnings[1]
    svg = str(chart(weeks, {"flagged_abnormal": 0.3}))
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and 'stroke-dasharray="6 4"' in svg


def test_agreement_counts_the_images_judged_and_says_how_many_were_not(tmp_path):
    state = State(tmp_path / "data")
    monday = datetime(2026, 11, 2)
    _fill(state, monday, 10, 5, reviews=4, agreed=4)
    # a fifth image found not assessable, then an image judged twice: its latest finding counts, once
    state.append_review("1.2.9.5", "amina", "review", None, "not_assessable", "", "", at=monday.timestamp() + 7200,
                        image="1.2.3.5")
    state.append_review("1.2.9.0", "amina", "review", False, "normal", "", "", at=monday.timestamp() + 7300,
                        image="1.2.3.0")
    week = weekly(state, {"flagged_abnormal": 0.5}, "x")[0]
    state.close()
    assert (week.reviews, week.agreed, week.not_judged) == (4, 3, 1)


def test_fewer_than_30_images_say_nothing(tmp_path):
    state = State(tmp_path / "data")
    _fill(state, datetime(2026, 11, 2), 20, 20)
    assert weekly(state, {"flagged_abnormal": 0.3}, "x")[0].warnings == []
    state.close()


def test_results_summary_prints_the_weeks_and_their_warnings(tmp_path, edge_bundle):
    config = tmp_path / "node.toml"
    config.write_text(f'model = "{edge_bundle}"\ndata = "{tmp_path / "data"}"\n[dicom]\nenabled = false\n')
    state = State(tmp_path / "data")
    now = datetime.fromtimestamp(time.time())
    _fill(state, now - timedelta(days=now.weekday()), 40, 4)  # the tiny bundle's test split flagged every image
    state.close()
    shown = CliRunner().invoke(main, ["results", "--config", str(config), "--summary"])
    assert shown.exit_code == 0, shown.output
    assert "flagged 4 of 40 images abnormal (10%)" in shown.stdout and "expected (the bundle's test split" in shown.stdout
    data = json.loads(CliRunner().invoke(main, ["results", "--config", str(config), "--summary", "--format",
                                                "json"]).stdout)
    assert data["weeks"][0]["images"] == 40 and data["weeks"][0]["warnings"]


def test_parallel_logins_cannot_slip_past_the_limit(tmp_path):
    """Twenty wrong passwords at once from one address: five are checked, fifteen refused unchecked (the count and
    the try are one transaction, before the slow scrypt)."""
    from concurrent.futures import ThreadPoolExecutor

    from cxr_edge.web.accounts import add_user, log_in

    state = State(tmp_path / "data")
    add_user(state, "amina", "reviewer", "correct horse battery")
    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: log_in(state, "amina", "wrong password", "10.0.0.7"), range(20)))
    assert sorted(outcomes) == ["refused"] * 15 + ["wrong"] * 5
    assert log_in(state, "amina", "correct horse battery", "10.0.0.7") == "refused"
    state.close()
