"""Monitoring, week by week (WHO's guidance on CAD asks programmes to keep checking after calibration): the share
flagged abnormal and the share referred as out-of-distribution against what the site file (or the bundle) expects,
the share referred to a clinician for any reason, and agreement between the box and its readers. The rule is the
one every `classify` run applies (cxr_edge.site.site_file.monitor): an exact binomial test, p < 0.001, over at least
30 images; agreement, which nothing expects in advance, against the node's own record of the weeks before.

Shown on the status page as a small chart drawn here, as SVG (no internet library), and by
`cxr-edge results --summary`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from markupsafe import Markup, escape

from cxr_edge.language import _, percent
from cxr_edge.node.state import State
from cxr_edge.reasons import THRESHOLD_FREE, from_json
from cxr_edge.site.site_file import MONITOR_MIN_IMAGES, MONITOR_P_VALUE
from cxr_edge.site.stats import binomial_p_value


@dataclass
class Week:
    week: str  # ISO year and week, e.g. 2026-W49
    images: int = 0  # classified, not error rows
    answered: int = 0  # classified and not referred whatever the threshold (what "flagged abnormal" counts over)
    abnormal: int = 0
    ood: int = 0
    referred: int = 0
    reviews: int = 0  # images the readers judged (their latest finding on each)
    agreed: int = 0
    not_judged: int = 0  # reviewed images the readers found not assessable: left out of agreement
    warnings: list[str] = field(default_factory=list)

    def share(self, part: str, whole: str) -> float | None:
        total = getattr(self, whole)
        return getattr(self, part) / total if total else None


def weekly(state: State, expected: dict, source: str) -> list[Week]:
    """Every week with images or reviews, oldest first, each with its warnings in words."""
    weeks: dict[str, Week] = {}

    def week_of(seconds: float) -> Week:
        year, number, _day = datetime.fromtimestamp(seconds).isocalendar()
        key = f"{year}-W{number:02d}"
        return weeks.setdefault(key, Week(key))

    images, reviews = state.monitored()
    for row in images:
        week, codes = week_of(row["received"]), {reason.code for reason in from_json(row["reasons"])}
        week.images += 1
        week.referred += bool(row["refer"])
        week.ood += "ood" in codes
        if not codes & THRESHOLD_FREE:
            week.answered += 1
            week.abnormal += row["label"] != "normal"
    for row in reviews:
        week = week_of(row["time"])
        if row["agree"] is None:
            week.not_judged += 1
            continue
        week.reviews += 1
        week.agreed += bool(row["agree"])
    ordered = [weeks[k] for k in sorted(weeks)]
    agreed = reviewed = 0
    for week in ordered:  # agreement against the weeks before it: a drop shows, whatever the level
        week.warnings = _warnings(week, expected, source, agreed / reviewed if reviewed else None)
        agreed, reviewed = agreed + week.agreed, reviewed + week.reviews
    return ordered


def _warnings(week: Week, expected: dict, source: str, agreement: float | None) -> list[str]:
    """The week's shares far from what is expected, in words in the current language (`source`, in English for
    `cxr-edge results --summary`, is not shown here: the status page says where the expected shares come from)."""
    checks = (("abnormal", week.abnormal, week.answered, expected.get("flagged_abnormal")),
              ("ood", week.ood, week.images, expected.get("referred_ood")),
              ("agreed", week.agreed, week.reviews, agreement))
    found = []
    for which, k, n, p in checks:
        if p is None or n < MONITOR_MIN_IMAGES or binomial_p_value(k, n, float(p)) >= MONITOR_P_VALUE:
            continue
        values = {"week": week.week, "k": k, "n": n, "share": percent(k / n), "expected": percent(float(p))}
        if which == "abnormal":
            found.append(_("Week %(week)s: the box flagged %(k)s of %(n)s images abnormal (%(share)s), far from the "
                           "%(expected)s expected: check the X-ray unit and its export settings and the patients "
                           "sent, or calibrate again.") % values)
        elif which == "ood":
            found.append(_("Week %(week)s: the box found %(k)s of %(n)s images unlike the chest films the AI "
                           "learned from (%(share)s), far from the %(expected)s expected: check the X-ray unit and "
                           "its export settings and the patients sent.") % values)
        else:
            found.append(_("Week %(week)s: the readers agreed with the box on %(k)s of %(n)s images (%(share)s), "
                           "far from the %(expected)s of the weeks before: look at the readers' reviews and the "
                           "images sent, or calibrate again.") % values)
    return found


def chart(weeks: list[Week], expected: dict) -> Markup:
    """The weekly shares flagged abnormal and referred as a small line chart, with the expected share dashed."""
    shown = weeks[-26:]  # half a year fits a tablet
    width, height, left, bottom = 640, 220, 40, 30
    plot_w, plot_h = width - left - 10, height - bottom - 10
    step = plot_w / max(1, len(shown) - 1)

    def point(i: int, share: float) -> str:
        return f"{left + i * step:.1f},{10 + plot_h * (1 - share):.1f}"

    label = escape(_("Weekly shares flagged abnormal and referred"))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{label}" class="chart">']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = 10 + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{escape(percent(tick))}</text>')
    series = (("abnormal", "answered", "#8a4b00", "flagged abnormal", expected.get("flagged_abnormal")),
              ("referred", "images", "#a40000", "referred", None))
    for part, whole, colour, _words, target in series:
        points = [point(i, s) for i, w in enumerate(shown) if (s := w.share(part, whole)) is not None]
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        if target is not None:
            y = 10 + plot_h * (1 - float(target))
            parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
                         'stroke-dasharray="6 4"/>')
    for i, w in enumerate(shown):
        if len(shown) <= 8 or i % max(1, len(shown) // 8) == 0:
            parts.append(f'<text x="{left + i * step:.1f}" y="{height - 10}" font-size="11" text-anchor="middle">'
                         f'{escape(w.week[5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
