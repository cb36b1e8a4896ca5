"""What the pages show, from the node's state (cxr_edge.node.state.reviews holds the queries): the worklist (most
urgent first, by filter, 50 a page), one study with its images and review history, and a version number that
changes whenever the worklist does (the page polls it, so new studies appear without the clinician reloading)."""

from __future__ import annotations

from cxr_edge.language import N_, _
from cxr_edge.node.state import WORKLIST_FILTERS, State

PAGE = 50
FILTERS = tuple(WORKLIST_FILTERS)
_FILTER_NAMES = {"to_review": N_("To review"), "referred": N_("Referred"), "reviewed": N_("Reviewed"),
                 "all": N_("All")}


def filter_names() -> dict[str, str]:
    """The worklist's filters in the current language, in their order."""
    return {key: _(_FILTER_NAMES[key]) for key in FILTERS}


def worklist(state: State, which: str, page: int, day_start: float | None = None,
             search: str = "") -> tuple[list[dict], int]:
    """One page of studies and the number of studies the filter (a day, a search) holds."""
    return state.worklist(which, page, PAGE, day_start, search)


def version(state: State) -> str:
    return state.worklist_version()


def study(state: State, study_id: int) -> dict | None:
    return state.study_page(study_id)


def instance(state: State, instance_id: int) -> dict | None:
    return state.image(instance_id)
