"""The language a person reads: English (the source), and every language with a compiled catalogue under
locale/ (Spanish and French today; docs/languages.md says how to add one). Words are looked up when they are
shown, never stored: codes, column names, JSON keys and DICOM/FHIR codes are the same in every language.

Who chooses: the process's default (`set_default`: `cxr-edge classify --language`, $CXR_EDGE_LANGUAGE, the node's
`[web] language`), and for one web request the user's own choice or the browser's (`using`). Messages are written
with %(name)s placeholders, in Python (`_`, `ngettext`; `N_` marks a constant translated where it is shown) as in
the Jinja2 templates, so one checker (tests/edge/test_languages.py) holds every translation to its placeholders.
Numbers and dates are written in the language's form by Babel (imported when first needed).
"""

from __future__ import annotations

import functools
import gettext as _gettext
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "cxr_edge"
SOURCE = "en"
ENVIRONMENT = "CXR_EDGE_LANGUAGE"

_default = SOURCE
_request: ContextVar[str | None] = ContextVar("cxr_edge_language", default=None)


class LanguageError(ValueError):
    """A language the box has no catalogue for."""


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """English, then every language whose compiled catalogue ships in the package, in code order."""
    found = sorted(path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (SOURCE, *(code for code in found if code != SOURCE))


def check(code: str, where: str = "language") -> str:
    """`code` if the box speaks it; else a LanguageError that lists the ones it does."""
    code = (code or "").strip().lower()
    if code not in languages():
        raise LanguageError(f"{where} {code!r}: this box has no catalogue for it; choose one of "
                            f"{', '.join(languages())}")
    return code


def set_default(code: str) -> str:
    """The process's language, where no request chose one (a command, the node's threads); returns the one before."""
    global _default
    previous, _default = _default, check(code)
    return previous


@contextmanager
def speaking(code: str):
    """The process speaks `code` (checked) inside, as set_default, and the language before it afterwards (a
    command's run)."""
    previous = set_default(code)
    try:
        yield
    finally:
        set_default(previous)


def current() -> str:
    return _request.get() or _default


@contextmanager
def using(code: str):
    """Everything inside speaks `code` (one web request: its thread, or its task)."""
    token = _request.set(check(code))
    try:
        yield
    finally:
        _request.reset(token)


def in_source_language(function):
    """`function` always speaks English: the text of DICOM SR and FHIR objects, which go into the record beside
    their codes (their character sets are ASCII; a viewer shows the codes' meanings in its own language)."""

    @functools.wraps(function)
    def english(*args, **kwargs):
        with using(SOURCE):
            return function(*args, **kwargs)

    return english


@lru_cache(maxsize=None)
def _translations(code: str) -> _gettext.NullTranslations:
    if code == SOURCE:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, [code])


def _(message: str) -> str:
    """`message` (English) in the current language."""
    return _translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations(current()).ngettext(singular, plural, n)


def install(env) -> None:
    """A Jinja2 environment (with the jinja2.ext.i18n extension) speaks the current language: `_("...")` and
    `ngettext(...)` in templates, new-style (autoescaped, %(name)s placeholders, a literal % written %%)."""
    env.install_gettext_callables(gettext=_, ngettext=ngettext, newstyle=True)


def N_(message: str) -> str:
    """Marks a constant for the catalogue; it is translated where it is shown, with `_`."""
    return message


def name_of(code: str) -> str:
    """A language's name in itself ("Español"), for the switch on the screen."""
    from babel import Locale

    name = Locale.parse(code).get_display_name(code)
    return name[:1].upper() + name[1:]


def decimal(value: float, digits: int) -> str:
    """`value` with `digits` decimals, in the language's form (0.443, 0,443)."""
    from babel.numbers import format_decimal

    return format_decimal(value, "0." + "0" * digits if digits else "0", locale=current())


def percent(share: float) -> str:
    """A share as a whole percentage in the language's form (45%; 45 %, with a no-break space, in Spanish and
    French)."""
    from babel.numbers import format_percent

    return format_percent(share, locale=current())


def when(seconds: float | None) -> str:
    """A time of this box's clock, day and minute, in the language's form ("Dec 6, 2026, 06:15", "6 dic 2026,
    6:15"): the month in words, so that no reader takes the 6th of December for the 12th of June."""
    if seconds is None:
        return ""
    from babel import Locale
    from babel.dates import format_skeleton

    moment, locale = datetime.fromtimestamp(seconds), Locale.parse(current())
    day, minute = format_skeleton("yMMMd", moment, locale=locale), format_skeleton("Hm", moment, locale=locale)
    return str(locale.datetime_formats["medium"]).replace("{1}", day).replace("{0}", minute)


def negotiate(accept_language: str) -> str | None:
    """The first of the box's languages the browser's Accept-Language asks for ("es-MX,es;q=0.9,en;q=0.5"), by
    its q-values; None when it asks for none of them."""
    wanted = []
    for position, part in enumerate(accept_language.split(",")[:20]):
        tag, _sep, rest = part.strip().partition(";")
        quality = 1.0
        if rest.strip().startswith("q="):
            try:
                quality = float(rest.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            wanted.append((-quality, position, tag.strip().lower()))
    for _quality, _position, tag in sorted(wanted):
        for code in (tag, tag.split("-")[0]):
            if code in languages():
                return code
    return None
