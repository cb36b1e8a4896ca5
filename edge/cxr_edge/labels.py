"""The label contract shared by training, conversion and the box.

The cascade: stage 1 says normal vs abnormal; stage 2, for abnormal images only, picks the disease.
"""

from cxr_edge.language import N_, _

LABELS = ("normal", "lung_opacity", "viral_pneumonia", "covid19")
STAGE1_LABELS = ("normal", "abnormal")
STAGE2_LABELS = ("lung_opacity", "viral_pneumonia", "covid19")

# Each label as a clinician reads it, in every report form (the canonical names stay the machine-readable ones),
# translated where it is shown (in_words).
LABEL_WORDS = {
    "normal": N_("Normal"),
    "lung_opacity": N_("Lung opacity"),
    "viral_pneumonia": N_("Viral pneumonia"),
    "covid19": N_("COVID-19"),
}

# Folder names of the COVID-19 Radiography Database, by canonical label.
DATABASE_FOLDERS = {
    "normal": "Normal",
    "lung_opacity": "Lung_Opacity",
    "viral_pneumonia": "Viral Pneumonia",
    "covid19": "COVID",
}


class UnknownLabelError(ValueError):
    """A folder or label name that maps to none of the canonical labels."""


def _fold(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_")


# Accepted spellings, folded: the Database's folder names and the canonical names themselves.
_ALIASES = {_fold(label): label for label in LABELS}
_ALIASES.update({_fold(folder): label for label, folder in DATABASE_FOLDERS.items()})
ACCEPTED_NAMES = tuple(sorted(set(LABELS) | set(DATABASE_FOLDERS.values())))


def label_from_folder(name: str) -> str:
    """Map a class folder name to its canonical label, ignoring case, spaces, '-' and '_'."""
    label = _ALIASES.get(_fold(name))
    if label is None:
        raise UnknownLabelError(
            f"unknown class folder {name!r}: expected one of {', '.join(repr(n) for n in ACCEPTED_NAMES)} "
            "(case, spaces, '-' and '_' are ignored)"
        )
    return label


def in_words(label: str) -> str:
    """A label as a clinician reads it, in the current language ("Lung opacity", "Opacidad pulmonar"); an empty
    label (an error row) stays empty."""
    return _(LABEL_WORDS[label]) if label in LABEL_WORDS else label


def stage1_target(label: str) -> int:
    """0 for normal, 1 for any disease."""
    return 0 if label == "normal" else 1


def stage2_target(label: str) -> int:
    """Index of a disease label in STAGE2_LABELS."""
    return STAGE2_LABELS.index(label)
