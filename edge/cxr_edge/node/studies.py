"""Which image leads a study: the one whose result is the study's, whose thumbnail and reasons the worklist shows
side by side, and whose label the study's FHIR Bundle concludes with. Decided once, by the classifying thread, and
stored with the study (cxr_edge.node.state); nothing else decides it again."""

from __future__ import annotations

from cxr_edge.reasons import THRESHOLD_FREE
from cxr_edge.reports.triage import urgency
from cxr_edge.run.result import Result


def lead_image(images: list[tuple[str, Result]]) -> tuple[str, Result]:
    """The (SOP Instance UID, result) that leads: among the images of the kind the AI reads, the most urgent
    (cxr_edge.reports.triage.urgency: likely abnormal by probability, then too unsure to judge, then likely normal);
    only when there is none, an image of another kind (a lateral view, a hand, one unlike any radiograph it learned
    from); an unreadable image last. So a study's frontal film leads its lateral view, whatever the lateral says."""
    return min(images, key=lambda image: (_judged(image[1]), urgency(image[1])))


def _judged(result: Result) -> int:
    """0 judged by the AI, 1 referred for a reason no threshold changes (the AI cannot judge it), 2 unreadable."""
    if result.error or not result.label:
        return 2
    return 1 if set(result.reason_codes) & THRESHOLD_FREE else 0
