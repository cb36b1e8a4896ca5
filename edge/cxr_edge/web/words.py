"""How the screen writes what the header and the database hold, for a clinician: a person's name as "BANDA, Ruth"
(not DICOM's "Banda^Ruth"), age and sex in words, and a stored row as the result it is."""

from __future__ import annotations

from cxr_edge.labels import in_words
from cxr_edge.node.receiver import header_text
from cxr_edge.reports.triage import BAND_WORDS, strength
from cxr_edge.run.result import Result

SEXES = {"M": "male", "F": "female", "O": "other"}
AGE_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}


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
    return ", ".join(part for part in (_age(study), SEXES.get((study.get("patient_sex") or "").upper(), "")) if part)


def _age(study: dict) -> str:
    age = (study.get("patient_age") or "").strip().upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in AGE_UNITS:
        return f"{int(age[:3])} {AGE_UNITS[age[3]]}"
    born, seen = (study.get("patient_birth_date") or "").strip(), (study.get("study_date") or "").strip()
    if len(born) == 8 and len(seen) == 8 and born.isdigit() and seen.isdigit():
        years = int(seen[:4]) - int(born[:4]) - (seen[4:] < born[4:])  # not yet this year's birthday
        return f"{years} years" if 0 <= years < 130 else ""
    return ""


def study_headline(study: dict) -> str:
    """A worklist row's result in a line (cxr_edge.reports.triage.headline), from its stored band, label and its
    leading image's probability of normal."""
    which = study.get("band") or ""
    if which == "abnormal":
        return f"Likely {in_words(study['label'])} - {strength(1.0 - (study.get('lead_p_normal') or 0.0))}"
    if which == "normal":
        return f"Likely normal - {strength(study.get('lead_p_normal') or 0.0)}"
    return BAND_WORDS.get(which, "Waiting to be classified")


def result_of(image: dict) -> Result:
    """A page's image row (with its stored result) as the Result it is."""
    return Result.from_record(image.get("path") or "", image)
