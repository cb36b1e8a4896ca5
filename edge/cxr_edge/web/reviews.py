"""Reviews and outcomes: append-only. A clinician records agree or disagree and the reader's finding, and later a
confirmatory result; every entry keeps its user and time, nothing is ever updated or deleted, and the study page
shows them all."""

from __future__ import annotations

import time

from cxr_edge.labels import LABELS
from cxr_edge.node.state import State

FINDINGS = (*LABELS, "other_abnormal", "not_assessable")
FINDING_WORDS = {"normal": "Normal", "lung_opacity": "Lung opacity", "viral_pneumonia": "Viral pneumonia",
                 "covid19": "COVID-19", "other_abnormal": "Other abnormality", "not_assessable": "Not assessable"}


class ReviewError(ValueError):
    """A review form with a value it cannot hold: the message says which."""


def add_review(state: State, study_uid: str, user: str, agree: str, finding: str, note: str = "") -> None:
    if agree not in ("agree", "disagree"):
        raise ReviewError("choose agree or disagree")
    if finding not in FINDINGS:
        raise ReviewError("choose the reader's finding")
    _append(state, study_uid, user, "review", agree == "agree", finding, "", note)


def add_confirmation(state: State, study_uid: str, user: str, code: str, allowed: tuple[str, ...],
                     note: str = "") -> None:
    if code not in allowed:
        raise ReviewError(f"choose a confirmatory result: one of {', '.join(allowed)}")
    _append(state, study_uid, user, "confirmation", None, "", code, note)


def _append(state: State, study_uid: str, user: str, kind: str, agree, finding: str, confirmation: str,
            note: str) -> None:
    with state.transaction() as db:
        db.execute("INSERT INTO reviews (study_instance_uid, user, time, kind, agree, finding, confirmation, note) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (study_uid, user, time.time(), kind, None if agree is None else int(agree), finding, confirmation,
                    note.strip()[:2000]))
