"""The terminal table (`classify --format table`): every line fits the terminal (its width, or $COLUMNS; 100
columns when there is no terminal, never fewer than 80), with names measured as a terminal shows them (a CJK
character takes two columns).

Each row carries short reason codes with a legend under the table; the full reasons and error messages stay in
every file form (CSV, JSON), and the errors are listed in full, wrapped, under the table.
"""

from __future__ import annotations

import shutil
import textwrap
import unicodedata

from cxr_edge.labels import LABELS, in_words
from cxr_edge.run.classify import rows_of
from cxr_edge.run.result import Result, for_terminal
from cxr_edge.language import _
from cxr_edge.reasons import CATALOGUE, short_name

WIDTH = 100  # columns when stdout is no terminal and $COLUMNS is unset
MIN_WIDTH = 80
PATH_MIN, WHY_MIN = 20, 14  # columns each keeps when the terminal is too narrow for both
SHORT = dict(zip(LABELS, ("nl", "lo", "vp", "cv")))  # probability column headers


def terminal_width() -> int:
    return max(MIN_WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)


def display_width(text: str) -> int:
    """Columns a terminal gives `text`: two for wide (East Asian) characters, none for combining marks."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _fit(text: str, width: int) -> str:
    """`text` in `width` columns: a long path keeps its end (the file name) after an ellipsis."""
    if display_width(text) <= width:
        return text
    end = ""
    for ch in reversed(text):
        if display_width(ch + end) > width - 3:
            break
        end = ch + end
    return "..." + end


def _share(room: int, path: int, why: int) -> tuple[int, int]:
    """(why, path) widths in `room` columns. Both whole when they fit; otherwise the file name comes first: the
    why codes keep WHY_MIN columns (the legend and every file form have them whole) and the path the rest, but
    the path never gets under PATH_MIN."""
    if path + why <= room:
        return why, room - why
    path = max(PATH_MIN, room - max(min(why, WHY_MIN), room - path))
    return room - path, path


def _cut(text: str, width: int) -> str:
    """Codes cut at the end, so the first (the most telling: screen-positive, then the header's) stay."""
    return text if len(text) <= width else text[:width - 3] + "..."


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def _cells(r: Result) -> list[str]:
    probs = [f"{p:.2f}" for p in r.probs] if r.probs else ["-"] * len(LABELS)
    codes = "error" if r.error else ",".join(short_name(code) for code in r.reason_codes)
    return [in_words(r.label) or _("ERROR"), *probs, _("yes") if r.refer else "", codes]


def to_table(results: list[Result], summary_line: str, notices: list[str], width: int | None = None) -> str:
    """The table at `width` columns (default: the terminal's)."""
    width = width or terminal_width()
    rows = rows_of(results)
    headers = ["label", *(f"p_{SHORT[label]}" for label in LABELS), "refer", "why"]
    cells = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    paths = [for_terminal(r.path) for r in rows]
    widths[-1], path_width = _share(width - sum(widths[:-1]) - 2 * len(widths),
                                    max((display_width(p) for p in paths), default=4), widths[-1])

    def line(path: str, row: list[str]) -> str:
        codes = _cut(row[-1], widths[-1])
        parts = [_pad(_fit(path, path_width), path_width), *(_pad(_fit(c, w), w) for c, w in zip(row[:-1], widths)),
                 codes]
        return "  ".join(parts).rstrip()

    out = [line("path", headers), line("-" * path_width, ["-" * w for w in widths])]
    out += [line(path, c) for path, c in zip(paths, cells)]
    out += ["", *_legend(rows, width), *_errors(rows, width), ""]
    for text in [summary_line, *notices]:
        out += textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return "\n".join(out) + "\n"


def _legend(rows: list[Result], width: int) -> list[str]:
    used = {short_name(code) for r in rows for code in r.reason_codes}
    meanings = [f"{entry.short} = {entry.legend()}" for entry in CATALOGUE.values() if entry.short in used]
    probs = _("p_: probability of %(labels)s") % {
        "labels": ", ".join(f"{in_words(label)} ({SHORT[label]})" for label in LABELS)}
    lines = textwrap.wrap(probs, width, subsequent_indent="  ")
    if meanings:
        lines += textwrap.wrap("why: " + "; ".join(meanings), width, subsequent_indent="  ", break_on_hyphens=False)
    return lines


def _errors(rows: list[Result], width: int) -> list[str]:
    errors = [r for r in rows if r.error]
    if not errors:
        return []
    lines = [_("could not be read (%(num)s):") % {"num": len(errors)}]
    for r in errors:
        lines += textwrap.wrap(f"{for_terminal(r.path)}: {for_terminal(r.error)}", width, initial_indent="  ",
                               subsequent_indent="    ", break_on_hyphens=False, break_long_words=True)
    return lines
