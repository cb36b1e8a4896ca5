"""Why an image is referred (or why a disease label stands over a longer "normal" bar), as codes with their
parameters: what the box stores, counts and sends. Words are made from a code only where a person reads them,
by this one catalogue, so rewording or translating a reason changes no stored data.

`Reason("low_confidence", {"label": "covid19", "p": 0.443, "floor": 0.6})` reads "low confidence: probability of
COVID-19 0.443, below the confidence floor 0.600".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from cxr_edge.labels import LABEL_WORDS, in_words
from cxr_edge.language import N_, _, decimal, percent


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    params: dict = field(default_factory=dict, compare=True, hash=False)

    def words(self) -> str:
        """The reports' sentence (CSV, JSON, the table's legend, the SR and FHIR notes, the stick's HTML)."""
        return CATALOGUE.get(self.code, CATALOGUE[OTHER]).words(self.params)

    def plain(self) -> str:
        """The same in a clinician's words, for the screen: no thresholds or floors by name, percentages."""
        plain = PLAIN.get(self.code)
        return plain(self.params) if plain else self.words()


@dataclass(frozen=True, slots=True)
class Entry:
    """A code's words: `short` names it in the terminal table (the same in every language, as the codes), `meaning`
    in its legend (translated where shown, `Entry.legend`), `words` makes the sentence from the parameters. `threshold_free`: it refers an image whatever the stage 1 threshold, so site
    calibration and monitoring leave such images out."""

    short: str
    meaning: str
    words: Callable[[dict], str]
    threshold_free: bool = False

    def legend(self) -> str:
        return _(self.meaning)


def distinct_decimals(value: float, limit: float) -> tuple[str, str]:
    """Two numbers to two decimals, or more where two would print them equal (0.1345 vs 0.1341), in the current
    language's form."""
    for digits in (2, 3, 4, 6):
        if f"{value:.{digits}f}" != f"{limit:.{digits}f}" or digits == 6:
            return decimal(value, digits), decimal(limit, digits)


def _screen_positive(p: dict) -> str:
    abnormal, threshold = distinct_decimals(p["p_abnormal"], p["threshold"])
    if p.get("site"):
        return _("screen-positive: probability of an abnormal finding %(abnormal)s, above this site's screening "
                 "threshold %(threshold)s") % {"abnormal": abnormal, "threshold": threshold}
    return _("screen-positive: probability of an abnormal finding %(abnormal)s, above the bundle's screening "
             "threshold %(threshold)s") % {"abnormal": abnormal, "threshold": threshold}


def _screen_positive_plain(p: dict) -> str:
    shares = {"abnormal": percent(p["p_abnormal"]), "threshold": percent(p["threshold"])}
    if p.get("site"):
        return _("Flagged abnormal: the chance of an abnormal finding (%(abnormal)s) is above the %(threshold)s at "
                 "which this clinic flags, though normal is the likeliest single answer.") % shares
    return _("Flagged abnormal: the chance of an abnormal finding (%(abnormal)s) is above the %(threshold)s at "
             "which this box flags, though normal is the likeliest single answer.") % shares


OTHER = "other"
# In the order the terminal table's legend lists them. Each sentence is made in the current language
# (cxr_edge.language), its numbers in that language's form.
CATALOGUE: dict[str, Entry] = {
    "too_small": Entry("small", N_("image too small to be a radiograph"), lambda p: _(
        "image too small (%(width)sx%(height)s px, at least %(min_side)s px a side expected)") % {
        "width": p["width"], "height": p["height"], "min_side": p["min_side"]}, threshold_free=True),
    "aspect_ratio": Entry("aspect", N_("extreme aspect ratio for a chest radiograph"), lambda p: _(
        "extreme aspect ratio (%(aspect)s:1, chest radiographs are near square)") % {
        "aspect": decimal(p["aspect"], 1)}, threshold_free=True),
    "flat": Entry("flat", N_("near-constant pixels"), lambda p: _(
        "near-constant pixels (1st-99th percentile spread %(spread)s gray levels)") % {
        "spread": decimal(p["spread"], 0)}, threshold_free=True),
    "not_frontal": Entry("lateral", N_("DICOM header: lateral or oblique view, not frontal PA/AP"), lambda p: _(
        "not a frontal view (the DICOM header gives a lateral or oblique view position): the models read frontal "
        "PA/AP chest radiographs"), threshold_free=True),
    "body_part": Entry("body-part", N_("DICOM header: body part other than the chest"), lambda p: _(
        "the DICOM header names a body part other than the chest"), threshold_free=True),
    "modality": Entry("modality", N_("DICOM header: modality other than CR/DX"), lambda p: _(
        "the DICOM header names a modality other than radiography (CR/DX)"), threshold_free=True),
    "for_processing": Entry("raw", N_("DICOM header: 'for processing' (raw detector) image"), lambda p: _(
        "a 'for processing' image (raw detector data, not meant for viewing)"), threshold_free=True),
    "ood": Entry("ood", N_("unlike the radiographs the model learned from (out-of-distribution)"), lambda p: _(
        "out-of-distribution: unlike the radiographs the model learned from (score %(score)s, limit "
        "%(limit)s)") % {"score": decimal(p["score"], 2), "limit": decimal(p["limit"], 2)}, threshold_free=True),
    "low_confidence": Entry("low-conf", N_("the label's probability is below the confidence floor"), lambda p: _(
        "low confidence: probability of %(label)s %(p)s, below the confidence floor %(floor)s") % {
        "label": in_words(p["label"]), "p": decimal(p["p"], 3), "floor": decimal(p["floor"], 3)}),
    "unverified": Entry("unverified", N_("the bundle did not pass its parity gate (--allow-unverified)"), lambda p: _(
        "unverified model: not shown to give the results of the model it was validated as (the bundle did not "
        "pass its parity gate)")),
    # not a reason to refer: why a disease label stands over a longer "normal" bar
    "screen_positive": Entry("screen", N_("abnormal because the probability of an abnormal finding passed the "
                                          "screening threshold, though normal is the most probable single class"),
                             _screen_positive),
    OTHER: Entry("other", N_("another reason: see the CSV or JSON report"), lambda p: p.get("text", "")),
}
# The screen's words (Reason.plain), for a clinician: what it means and, where it helps, what to do.
PLAIN: dict[str, Callable[[dict], str]] = {
    "too_small": lambda p: _("Too small to be a chest radiograph (%(width)s x %(height)s pixels).") % {
        "width": p["width"], "height": p["height"]},
    "aspect_ratio": lambda p: _("Too long and narrow for a chest radiograph (%(aspect)s to 1).") % {
        "aspect": decimal(p["aspect"], 1)},
    "flat": lambda p: _("Almost blank: there is no usable picture."),
    "not_frontal": lambda p: _("Not a front (PA or AP) view: the AI reads frontal chest films only."),
    "body_part": lambda p: _("Not a chest image, says the X-ray unit."),
    "modality": lambda p: _("Not a radiograph, says the X-ray unit."),
    "for_processing": lambda p: _("A raw detector image, not meant for viewing."),
    "ood": lambda p: _("Unlike the chest films the AI learned from."),
    "low_confidence": lambda p: _("The AI is unsure: %(label)s at %(p)s, below the %(floor)s it needs to say "
                                  "so.") % {"label": in_words(p["label"]), "p": percent(p["p"]),
                                            "floor": percent(p["floor"])},
    "unverified": lambda p: _("This model was not shown to match the one that was validated."),
    "screen_positive": _screen_positive_plain,
}
THRESHOLD_FREE = frozenset(code for code, entry in CATALOGUE.items() if entry.threshold_free)


def short_name(code: str) -> str:
    """A code's name in the terminal table's narrow column and in printed counts (`small`, `lateral`...)."""
    return CATALOGUE.get(code, CATALOGUE[OTHER]).short


def reason_text(reasons: Iterable[Reason]) -> str:
    """The reasons in words, as the reports' `reason` column has always held them: "; "-separated."""
    return "; ".join(reason.words() for reason in reasons)


def codes_text(reasons: Iterable[Reason]) -> str:
    """The reports' `reason_codes` column: the codes, ";"-separated."""
    return ";".join(reason.code for reason in reasons)


def to_json(reasons: Iterable[Reason]) -> str:
    """How the node's database and the run journal store reasons: [[code, {params}], ...]."""
    return json.dumps([[reason.code, reason.params] for reason in reasons], separators=(",", ":"))


def from_json(text: str | None) -> tuple[Reason, ...]:
    return tuple(Reason(code, dict(params)) for code, params in json.loads(text or "[]"))


# Reading the words this box wrote before reasons were stored as codes (databases of schema version 4 and run
# journals of earlier versions): used by the migration only. A sentence that matches none stays as `other`.
_NUMBER = r"(\d+(?:\.\d+)?)"
_LABEL_BY_WORDS = {words: label for label, words in LABEL_WORDS.items()}
_LEGACY: tuple[tuple[str, str, Callable[[re.Match], dict]], ...] = (
    ("too_small", r"image too small \((\d+)x(\d+) px, at least (\d+) px a side expected\)",
     lambda m: {"width": int(m[1]), "height": int(m[2]), "min_side": int(m[3])}),
    ("aspect_ratio", rf"extreme aspect ratio \({_NUMBER}:1, chest radiographs are near square\)",
     lambda m: {"aspect": float(m[1])}),
    ("flat", rf"near-constant pixels \(1st-99th percentile spread {_NUMBER} gray levels\)",
     lambda m: {"spread": float(m[1])}),
    ("not_frontal", r"not a frontal view\b.*", lambda m: {}),
    ("body_part", r"the DICOM header names a body part\b.*", lambda m: {}),
    ("modality", r"the DICOM header names a modality\b.*", lambda m: {}),
    ("for_processing", r"a 'for processing' image\b.*", lambda m: {}),
    ("ood", rf"out-of-distribution: .*\(score {_NUMBER}, limit {_NUMBER}\)",
     lambda m: {"score": float(m[1]), "limit": float(m[2])}),
    ("low_confidence", rf"low confidence: probability of (.+) {_NUMBER}, below the confidence floor {_NUMBER}",
     lambda m: {"label": _LABEL_BY_WORDS[m[1]], "p": float(m[2]), "floor": float(m[3])}),
    ("unverified", r"unverified model\b.*", lambda m: {}),
    ("screen_positive", rf"screen-positive: probability of an abnormal finding {_NUMBER}, above (this site's|the "
                        rf"bundle's) screening threshold {_NUMBER}",
     lambda m: {"p_abnormal": float(m[1]), "threshold": float(m[3]), "site": m[2] == "this site's"}),
)


def from_text(text: str) -> tuple[Reason, ...]:
    """Codes for reasons stored as words ("; "-separated) by earlier versions."""
    reasons = []
    for part in filter(None, (p.strip() for p in (text or "").split("; "))):
        for code, pattern, params in _LEGACY:
            match = re.fullmatch(pattern, part)
            if match:
                try:
                    reasons.append(Reason(code, params(match)))
                    break
                except KeyError:  # a label in words this version does not know
                    pass
        else:
            reasons.append(Reason(OTHER, {"text": part}))
    return tuple(reasons)
