"""Who comes first, in words a clinician reads: every result falls in one of four bands, in this order.

1. Likely abnormal: the AI found a disease (by the probability of an abnormal finding, highest first).
2. The AI cannot judge this: a view, body part or image unlike what it learned from, or too unsure of its label;
   a person must look. Said as such, with what to do, never as a finding.
3. Likely normal.
4. Could not be read.

The stick's report and the node's screen order by the same bands (`urgency`), and the node stores each study's band
(that of its leading image), so nothing decides it again.
"""

from __future__ import annotations

from cxr_edge.labels import LABELS, in_words
from cxr_edge.language import N_, _
from cxr_edge.run.result import Result

BANDS = ("abnormal", "cannot_judge", "normal", "unreadable")
_BAND_WORDS = {"abnormal": N_("Likely abnormal"), "cannot_judge": N_("The AI cannot judge this: look yourself"),
               "normal": N_("Likely normal"), "unreadable": N_("Could not be read"),
               "waiting": N_("Waiting to be classified")}
# What to do, per band (the colour on the screen always comes with these words, never alone)
_BAND_ADVICE = {"abnormal": N_("Review the image first."),
                "cannot_judge": N_("Read the image yourself: the AI's label is not to be trusted here."),
                "normal": N_("Review when you can."),
                "unreadable": N_("Send the image again, or read it on the unit.")}


def band_words(which: str) -> str:
    """A band (or "waiting", a study not classified yet) in the current language."""
    return _(_BAND_WORDS[which])


def band_advice(which: str) -> str:
    return _(_BAND_ADVICE[which]) if which in _BAND_ADVICE else ""


def band(result: Result) -> str:
    """The result's band: an error or no label is unreadable; any reason to refer (a wrong view or body part, an
    image unlike the training images, low confidence, an unverified model) means the AI cannot judge; then the
    label decides."""
    if result.error or not result.label:
        return "unreadable"
    if result.refer:
        return "cannot_judge"
    return "normal" if result.label == LABELS[0] else "abnormal"


def urgency(result: Result) -> tuple:
    """Sort key, most urgent first: the band, then the probability of an abnormal finding, highest first."""
    return BANDS.index(band(result)), -(1.0 - result.probs[0]) if result.probs else 0.0


def strength(p: float) -> str:
    """A probability in a word: high (0.8 and over), moderate (0.6 and over), low. The numbers stay one tap away."""
    return _("high") if p >= 0.8 else _("moderate") if p >= 0.6 else _("low")


def likely(label: str, p: float) -> str:
    """"Likely COVID-19 - high", "Likely normal - moderate": a label and the strength of `p`."""
    if label == LABELS[0]:
        return _("Likely normal - %(strength)s") % {"strength": strength(p)}
    return _("Likely %(label)s - %(strength)s") % {"label": in_words(label), "strength": strength(p)}


def headline(result: Result) -> str:
    """The result in a line: "Likely COVID-19 - high", "Likely normal - moderate", "The AI cannot judge this: look
    yourself", "Could not be read". For a disease, its strength is that of an abnormal finding (stage 1), which is
    what made the image abnormal."""
    which = band(result)
    if which == "abnormal":
        return likely(result.label, 1.0 - result.probs[0])
    if which == "normal":
        return likely(result.label, result.probs[0])
    return band_words(which)
