"""CSV cells a spreadsheet will not run: file names come from whoever made the stick, and a cell that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets (OWASP, "CSV
Injection"). Such a cell is written with a leading apostrophe, which spreadsheets show as text and hide. A cell
that already starts with an apostrophe gets one more, so that `plain` gives every cell back exactly."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe(value):
    """`value` as a CSV cell: text that a spreadsheet would run (or an apostrophe-led text) gets an apostrophe;
    numbers, booleans and None stay as they are."""
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, "'")):
        return "'" + value
    return value


def cell(value) -> str:
    """A report row's value as a CSV cell: empty for None, true/false for booleans, text through `safe`."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else safe(value)


def csv_line(values) -> str:
    """One CSV row, RFC 4180's way: each value through `cell`, quoted (quotes doubled) when it holds a comma, a quote,
    a carriage return or a line feed, ended by a line feed. Python's csv module leaves a bare carriage return
    unquoted when the line ends in a line feed alone, and a reader that splits on it starts a new row there."""
    fields = []
    for value in values:
        text = str(cell(value))  # numbers as the csv module writes them (str)
        if any(ch in text for ch in ',"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        fields.append(text)
    return ",".join(fields) + "\n"


def csv_text(columns, rows) -> str:
    """A header line of `columns`, then each row (a dict) in their order (csv_line)."""
    return csv_line(columns) + "".join(csv_line(row.get(column) for column in columns) for row in rows)


def plain(cell: str) -> str:
    """A cell written by `safe`, as it was."""
    return cell[1:] if cell.startswith("'") else cell
