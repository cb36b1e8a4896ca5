"""How the screen writes what the header and the database hold, for a clinician: a person's name as "BANDA, Ruth"
(not DICOM's "Banda^Ruth"), age and sex in words, and a stored row as the result it is."""

from __future__ import annotations

from cxr_edge.language import N_, _, ngettext
from cxr_edge.node.receiver import header_text
from cxr_edge.reports.triage import band_words, likely
from cxr_edge.run.result import Result

SEXES = {"M": N_("male"), "F": N_("female"), "O": N_("other")}


def person_name(pn: str | None) -> str:
    """A DICOM person name (Family^Given^Middle^Prefix^Suffix; its first, alphabetic group) as "FAMILY, Given
    Middle"; a name without components stays as written. Without control or bidirectional control characters,
    and cut to its VR's length, whatever an older database holds (cxr_edge.node.receiver.header_text)."""
    alphabetic = header_text("PatientName", pn).split("=")[0]
    if "^" not in alphabetic:
        return alphabetic.strip()
    family, given, middle, prefix, suffix = (alphabetic.split("^") + [""] * 5)[:5]
    first = " ".join(part for part in (prefix, given, middle) if part.strip())
    name = ", ".join(part for part in (family.strip().upper(), first.strip()) if part)
    return f"{name} {suffix.strip()}".strip()


def age_sex(study: dict) -> str:
    """"45 years, female" from the header's Patient's Age (or the birth date and the study date) and sex; the parts
    the header leaves out are left out."""
    sex = SEXES.get((study.get("patient_sex") or "").upper())
    return ", ".join(part for part in (_age(study), _(sex) if sex else "") if part)


def _in_units(number: int, unit: str) -> str:
    if unit == "M":
        return ngettext("%(num)s month", "%(num)s months", number) % {"num": number}
    if unit == "W":
        return ngettext("%(num)s week", "%(num)s weeks", number) % {"num": number}
    if unit == "D":
        return ngettext("%(num)s day", "%(num)s days", number) % {"num": number}
    return ngettext("%(num)s year", "%(num)s years", number) % {"num": number}


def _age(study: dict) -> str:
    age = (study.get("patient_age") or "").strip().upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in "YMWD":
        return _in_units(int(age[:3]), age[3])
    born, seen = (study.get("patient_birth_date") or "").strip(), (study.get("study_date") or "").strip()
    if len(born) == 8 and len(seen) == 8 and born.isdigit() and seen.isdigit():
        years = int(seen[:4]) - int(born[:4]) - (seen[4:] < born[4:])  # not yet this year's birthday
        return _in_units(years, "Y") if 0 <= years < 130 else ""
    return ""


def study_headline(study: dict) -> str:
    """A worklist row's result in a line (cxr_edge.reports.triage.headline), from its stored band, label and its
    leading image's probability of normal."""
    which = study.get("band") or ""
    if which == "abnormal":
        return likely(study["label"], 1.0 - (study.get("lead_p_normal") or 0.0))
    if which == "normal":
        return likely("normal", study.get("lead_p_normal") or 0.0)
    return band_words(which if which in ("cannot_judge", "unreadable") else "waiting")


def result_of(image: dict) -> Result:
    """A page's image row (with its stored result) as the Result it is."""
    return Result.from_record(image.get("path") or "", image)


# The audit trail's actions, stored in English (a fixed set, as codes are) and shown in the reader's language.
AUDIT_ACTIONS = (N_("logged in"), N_("viewed"), N_("printed"), N_("reviewed"), N_("recorded a confirmatory result"),
                 N_("promoted a candidate bundle"), N_("rolled back to the previous bundle"))
STICK_STATES = {"running": N_("running"), "finished": N_("finished"), "interrupted": N_("interrupted")}


def action_words(action: str) -> str:
    return _(action) if action in AUDIT_ACTIONS else action


def candidate_verdict(candidate: dict) -> str:
    """The shadow comparison's verdict (cxr_edge.node.candidate.CandidateStatus) in the reader's language."""
    n = candidate["reviewed"]
    if candidate["verdict"] == "PASS":
        return ngettext("Not worse than the active bundle on %(num)s reviewed image: it can be promoted.",
                        "Not worse than the active bundle on %(num)s reviewed images: it can be promoted.",
                        n) % {"num": n}
    if candidate["verdict"] == "FAIL":
        return ngettext("Worse than the active bundle on %(num)s reviewed image: keep the active one.",
                        "Worse than the active bundle on %(num)s reviewed images: keep the active one.", n) % {"num": n}
    if candidate["more_reviews"] is not None:
        return ngettext("Cannot tell yet from %(num)s reviewed image: about %(more)s more would settle it.",
                        "Cannot tell yet from %(num)s reviewed images: about %(more)s more would settle it.",
                        n) % {"num": n, "more": candidate["more_reviews"]}
    return ngettext("Cannot tell yet from %(num)s reviewed image: review normal and abnormal images.",
                    "Cannot tell yet from %(num)s reviewed images: review normal and abnormal images.", n) % {"num": n}


def stick_state(state: str) -> str:
    return _(STICK_STATES[state]) if state in STICK_STATES else state


def viewer_words() -> dict[str, str]:
    """The full-resolution viewer's words (static/viewer.js), in the reader's language: %(name)s placeholders,
    which the script fills."""
    return {"loading": _("Loading the image at full resolution..."),
            "failed": _("The image cannot be shown at full resolution here (%(why)s)."),
            "size_16bit": _("%(columns)s x %(rows)s pixels, 16-bit values (%(min)s to %(max)s)"),
            "size_float": _("%(columns)s x %(rows)s pixels, floating-point values (%(min)s to %(max)s)"),
            "unit_window": _("Unit's window"), "unit_window_n": _("Unit's window %(number)s"),
            "middle": _("Middle 98%%"), "full_range": _("Full range"), "invert": _("Invert"),
            "zoom_in": _("Zoom in"), "zoom_out": _("Zoom out"), "reset": _("Reset")}
