"""What a reviewed image counts as: its truth for calibration and for the shadow comparison, from the reader's
finding and the study's confirmatory result (the reviews themselves are cxr_edge.web.reviews')."""

from __future__ import annotations

from cxr_edge.labels import LABELS
from cxr_edge.node.state import State
from cxr_edge.run.result import Result
from cxr_edge.site.calibrate import ABNORMAL

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


def judged(state: State, confirmatory_findings: dict[str, str]) -> tuple[list[tuple[dict, Result, str]], int]:
    """(row, result as classified, truth) of each reviewed image with a label to learn from, and how many reviewed
    images were left out (the reader found them not assessable). Only images the reader judged count: a
    confirmatory result of the study labels them, never an image the reader did not judge."""
    found, left_out = [], 0
    for row in reviewed_rows(state):
        label = truth_of(row, confirmatory_findings) if row["finding"] not in ("", None, "not_assessable") else ""
        if not label:
            left_out += 1
            continue
        found.append((row, Result.from_record(row["path"], row), label))
    return found, left_out


def calibration_set(state: State, confirmatory_findings: dict[str, str]) -> tuple[list[Result], dict[str, str], int]:
    """The reviewed images as `calibrate` takes them: their rows as classified, the truth by path, and how many
    reviewed images were left out (judged)."""
    found, left_out = judged(state, confirmatory_findings)
    return [result for _, result, _ in found], {result.path: label for _, result, label in found}, left_out
