"""One image's result, as one record: what `classify` reports, the node stores and the record objects carry.

Every reader and writer goes through two pairs: `as_record`/`from_record` for storage (the node's database and
the run journal: reasons as codes with their parameters, `RECORD_COLUMNS`), and `as_row` for the reports (the
reasons in words beside their codes, `COLUMNS`)."""

from __future__ import annotations

import re

from dataclasses import dataclass
from typing import Mapping, NamedTuple

import numpy as np

from cxr_edge.labels import LABELS, in_words
from cxr_edge.reasons import Reason, codes_text, from_json, reason_text, to_json

PROB_COLUMNS = tuple(f"p_{label}" for label in LABELS)
# What storage keeps of a result, besides its path: the node's results tables and the run journal.
RECORD_COLUMNS = ("label", *PROB_COLUMNS, "refer", "reasons", "error", "ood_score")
# The reports' columns. label_text and reason_codes come last: they were added after the others, and scripts
# read them by place too.
COLUMNS = ("path", "label", *PROB_COLUMNS, "refer", "reason", "error", "ood_score", "label_text", "reason_codes")


def printable(name: str) -> str:
    """A file name as reports show it: names that are not valid UTF-8 (a FAT stick written under another code
    page) keep their odd bytes as \\xNN escapes, so every report form can carry them and they still find the file."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# C0 and C1 controls (ESC starts a terminal's escape sequences), and bidirectional controls (which reorder a line)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def for_terminal(value):
    """A value as a terminal (or a script reading `results` and `reviews`) gets it: text with its control
    characters as \\xNN escapes and no bidirectional control, so that no header value or file name moves the cursor,
    clears the screen or reverses a patient ID; other values as they are."""
    if not isinstance(value, str):
        return value
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", _BIDI.sub("", printable(value)))


@dataclass(frozen=True, slots=True)
class Result:
    """One row of the report. `label` is empty when `error` is set. A file that is not an image (`skipped`
    names its kind: a DICOMDIR, a structured report) is counted in the summary, not given a row. `reasons` hold
    the reasons to refer and the screen-positive explanation, as codes; `refer` is set by the reasons to refer."""

    path: str
    label: str = ""
    probs: tuple[float, ...] = ()  # in LABELS order
    refer: bool = False
    reasons: tuple[Reason, ...] = ()
    error: str = ""
    ood_score: float | None = None  # None: the bundle has no out-of-distribution statistics, or an error row
    skipped: str = ""

    @property
    def reason(self) -> str:
        """The reasons in words ("; "-separated), as every report has shown them."""
        return reason_text(self.reasons)

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)

    def as_row(self) -> dict:
        """The report's row (COLUMNS)."""
        row = {"path": printable(self.path), "label": self.label}
        for i, column in enumerate(PROB_COLUMNS):
            row[column] = round(self.probs[i], 6) if self.probs else None
        row.update(refer=self.refer, reason=self.reason, error=self.error,
                   ood_score=None if self.ood_score is None else round(self.ood_score, 4),
                   label_text=in_words(self.label), reason_codes=codes_text(self.reasons))
        return row

    def as_record(self) -> dict:
        """What storage keeps (RECORD_COLUMNS): probabilities unrounded, reasons as JSON codes."""
        record = {"label": self.label}
        for i, column in enumerate(PROB_COLUMNS):
            record[column] = float(self.probs[i]) if self.probs else None
        record.update(refer=int(self.refer), reasons=to_json(self.reasons), error=self.error,
                      ood_score=self.ood_score)
        return record

    @classmethod
    def from_record(cls, path: str, record: Mapping, skipped: str = "") -> "Result":
        """The Result a stored record holds (older stores are converted before they are read: schema 5's migration,
        the journal's format)."""
        probs = tuple(record[c] for c in PROB_COLUMNS) if record["label"] else ()
        return cls(path, record["label"], probs, bool(record["refer"]), from_json(record["reasons"]),
                   record["error"] or "", record["ood_score"], skipped)


class Decoded(NamedTuple):
    """Everything about one file but inference: the model input, the reasons to refer it from its header and the
    sanity checks, its display image (when asked for), the error of an unreadable file, the kind of a skipped
    non-image, and a DICOM file's header (so that no later step reads the file again)."""

    pixels: np.ndarray | None
    reasons: list[Reason] | None
    display: np.ndarray | None
    error: str | None
    skipped: str
    header: object = None  # a DICOM file's header, no pixel data (cxr_edge.inputs.images.Radiograph)
