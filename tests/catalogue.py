"""The message catalogues as the language tests read them: a fresh extraction of the code and templates (what
`make translations` extracts), each language's .po, and the English a page in another language must not show."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from cxr_edge.language import DOMAIN, LOCALE_DIR

PACKAGE = LOCALE_DIR.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=1)
def extracted() -> dict[str, tuple[str, ...]]:
    """Every message of the code and templates now, as `make translations` extracts it: msgid -> its ids (a plural
    message has two)."""
    with open(LOCALE_DIR / "babel.cfg", encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found = {}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(PACKAGE), method_map, options_map, keywords=keywords):
        ids = message if isinstance(message, tuple) else (message,)
        found[ids[0]] = ids
    return found


def po_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalogue(code: str):
    with open(po_path(code), "rb") as fh:
        return read_po(fh)


def on_disk() -> list[str]:
    """Every language with a .po file (whether compiled or not)."""
    return sorted(path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


@lru_cache(maxsize=None)
def english_fragments(code: str) -> tuple[str, ...]:
    """The English a page in `code` must not show: of each message whose translation differs, the literal text
    between its placeholders, where it has three words or more and no translation of it holds the same text (a
    command such as `cxr-edge user add` stays as it is)."""
    fragments = set()
    for message in catalogue(code):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for english in ids:
            for part in PLACEHOLDER.split(english)[::2]:
                part = " ".join(part.replace("%%", "%").split()).strip(" ,.;:()-")
                if len(part.split()) >= 3 and not any(part in s.replace("%%", "%") for s in strings):
                    fragments.add(part)
    return tuple(sorted(fragments))


def english_in(text: str, code: str) -> list[str]:
    """The catalogue's English fragments that `text` (a page's text, a report) holds."""
    flat = " ".join(text.split())
    return [fragment for fragment in english_fragments(code) if fragment in flat]
