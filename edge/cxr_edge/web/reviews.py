"""Reviews and outcomes: append-only. A clinician records agree or disagree and the reader's finding, and later a
confirmatory result; every entry keeps its user and time, nothing is ever updated or deleted, and the study page
shows them all."""

from __future__ import annotations

from cxr_edge.labels import LABELS, in_words
from cxr_edge.language import N_, _
from cxr_edge.node.state import State

FINDINGS = (*LABELS, "other_abnormal", "not_assessable")
_OTHER_FINDINGS = {"other_abnormal": N_("Other abnormality"), "not_assessable": N_("Not assessable")}


def finding_words(finding: str) -> str:
    """A reader's finding in the current language (the four labels as the AI names them, and the two others)."""
    return _(_OTHER_FINDINGS[finding]) if finding in _OTHER_FINDINGS else in_words(finding)


class ReviewError(ValueError):
    """A review form with a value it cannot hold: the message says which."""


def agrees(finding: str, label: str) -> bool | None:
    """Whether a reader's finding agrees with the AI's label: derived, never typed, so a review cannot say "I agree"
    beside another finding. None when there is nothing to agree on (not assessable, or no AI label)."""
    if finding == "not_assessable" or not label:
        return None
    return finding == label


def add_review(state: State, study: dict, user: str, findings: dict[int, str], note: str = "") -> None:
    """The reader's finding on each image of `study` (a study page's dict), by image number, in one go; an image
    left without a finding is not reviewed. Agreement with the AI is derived per image."""
    images = {image["id"]: image for image in study["images"]}
    if not any(findings.values()):
        raise ReviewError(_("Choose a finding for at least one image."))
    entries = []
    for image_id, finding in findings.items():
        if image_id not in images:
            raise ReviewError(_("A finding for an image that is not in this study: reload the page."))
        if not finding:
            continue
        if finding not in FINDINGS:
            raise ReviewError(_("Choose your finding from the list."))
        image = images[image_id]
        entries.append((image["sop_instance_uid"], "review", agrees(finding, image["label"] or ""), finding, "",
                        note.strip()[:2000]))
    state.append_reviews(study["study_instance_uid"], user, entries)


def add_confirmation(state: State, study_uid: str, user: str, code: str, allowed: tuple[str, ...],
                     note: str = "") -> None:
    if code not in allowed:
        raise ReviewError(_("Choose a confirmatory result: one of %(codes)s.") % {"codes": ", ".join(allowed)})
    _append(state, study_uid, user, "confirmation", None, "", code, note)


def _append(state: State, study_uid: str, user: str, kind: str, agree, finding: str, confirmation: str,
            note: str) -> None:
    state.append_review(study_uid, user, kind, agree, finding, confirmation, note.strip()[:2000])
