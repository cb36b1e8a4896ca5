"""Reviews and outcomes: append-only. A clinician records agree or disagree and the reader's finding, and later a
confirmatory result; every entry keeps its user and time, nothing is ever updated or deleted, and the study page
shows them all."""

from __future__ import annotations

from cxr_edge.labels import LABELS
from cxr_edge.node.state import State
from cxr_edge.run.result import Result
from cxr_edge.site.calibrate import ABNORMAL

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
    state.append_review(study_uid, user, kind, agree, finding, confirmation, note.strip()[:2000])


# the reader's finding as the label calibration takes: a disease named, "abnormal" (stage 1 only), or none
FINDING_LABELS = {**{label: label for label in LABELS}, "other_abnormal": ABNORMAL, "not_assessable": ""}

def reviewed_rows(state: State) -> list[dict]:
    """One row per image of every reviewed study, with the study's latest review and latest confirmatory result
    (entries are never changed: the latest is the clinic's current word)."""
    return state.reviewed_rows()


def truth_of(row: dict, confirmatory_findings: dict[str, str]) -> str:
    """The label a reviewed image counts as: the confirmatory result's where it names one, else the reader's."""
    confirmed = confirmatory_findings.get(row["confirmation"] or "", "")
    return FINDING_LABELS.get(confirmed or "", "") or FINDING_LABELS.get(row["finding"] or "", "")


def calibration_set(state: State, confirmatory_findings: dict[str, str]) -> tuple[list[Result], dict[str, str]]:
    """The reviewed images as `calibrate` takes them: their rows as classified, and the truth by path (images whose
    reader found them not assessable are left out)."""
    results, truth = [], {}
    for row in reviewed_rows(state):
        label = truth_of(row, confirmatory_findings)
        if not label:
            continue
        results.append(Result.from_record(row["path"], row))
        truth[row["path"]] = label
    return results, truth
