"""The box's languages: every message of the code and templates translated in every catalogue (a new English
string without its translations fails here), the compiled catalogues those of the .po files, numbers and dates in
each language's form, the browser's choice, the heatmap's caption with its accents, and a stick classified in two
languages giving the same codes, probabilities and columns. Every language with a catalogue is tested: a new one is
picked up by itself."""

import csv
import html
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from babel.messages.mofile import write_mo
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont

from cxr_edge import language
from cxr_edge.cli import main
from cxr_edge.labels import in_words
from cxr_edge.language import DOMAIN, LOCALE_DIR, SOURCE, using
from cxr_edge.pictures import heatmap
from cxr_edge.run.result import Result

from tests.catalogue import PLACEHOLDER, catalogue, english_in, extracted, on_disk, po_path

TRANSLATED = [code for code in language.languages() if code != SOURCE]


def test_every_catalogue_on_disk_is_compiled_and_spoken():
    assert TRANSLATED, "no catalogue besides English: edge/cxr_edge/locale/*/LC_MESSAGES holds none"
    assert on_disk() == TRANSLATED  # a .po without its .mo (or the reverse) is a language half added


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_message_of_the_code_is_translated(code):
    """Compared with a fresh extraction: a message added to the code or a template without its translation fails
    (run `make translations`, translate what it left empty, and commit the .po and .mo files)."""
    messages = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalogue(code) if m.id}
    missing = [msgid for msgid in extracted() if msgid not in messages]
    assert not missing, f"{code}: not in the catalogue (run `make translations`): {missing[:5]}"
    for msgid, ids in extracted().items():
        message = messages[msgid]
        templated = any(place.endswith(".html") for place, _line in message.locations)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy and all(strings), f"{code}: not translated: {msgid!r}"
        for text in strings:  # the same placeholders (a plural form may leave out the count it says in words)
            assert set(PLACEHOLDER.findall(text)) <= set(PLACEHOLDER.findall(ids[-1])), (code, msgid, text)
            if len(ids) == 1:
                assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(msgid)), (code, msgid, text)
            if message.python_format or templated:  # templates %-format every message: a lone % breaks the page
                assert "%" not in PLACEHOLDER.sub("", text).replace("%%", ""), (code, text)
            if templated:  # a template takes its messages as markup: no tags, entities or attribute quotes
                assert not set("<>&\"") & set(text), (code, text)


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_compiled_catalogue_is_its_po_file(code):
    compiled = io.BytesIO()
    write_mo(compiled, catalogue(code))
    mo = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.mo"
    assert mo.read_bytes() == compiled.getvalue(), f"{mo} is stale: run `make translations`"
    assert po_path(code).is_file()


def test_numbers_dates_and_percentages_in_each_language_s_form():
    moment = 1796451300  # 2026-12-06 06:15 UTC; shown in this box's time zone, whatever it is
    written = {}
    for code in ("en", "es", "fr"):
        with using(code):
            written[code] = (language.decimal(0.443, 3), language.percent(0.45), language.when(moment))
    assert written["en"][:2] == ("0.443", "45%") and written["es"][:2] == ("0,443", "45\xa0%")
    assert written["fr"][:2] == ("0,443", "45\xa0%")
    assert "Dec" in written["en"][2] and "dic" in written["es"][2] and "déc." in written["fr"][2]
    assert language.when(None) == ""


def test_the_browser_s_language_is_chosen_by_its_q_values():
    assert language.negotiate("es-MX,es;q=0.9,en;q=0.5") == "es"
    assert language.negotiate("de-DE,fr;q=0.3,en;q=0.6") == "en"
    assert language.negotiate("fr-CA;q=0.8, de") == "fr"
    assert language.negotiate("de, it;q=0.5") is None and language.negotiate("") is None
    assert language.negotiate("es;q=0, fr;q=bad, en;q=0.1") == "en"


def test_a_language_the_box_has_no_catalogue_for_is_refused_with_the_ones_it_has():
    with pytest.raises(language.LanguageError, match=r"'xx': this box has no catalogue for it; choose one of en, "):
        language.check("xx")
    with using("es"):
        assert language.current() == "es"
    assert language.current() == SOURCE


def _banner_lines(picture: Image.Image, result: Result, display: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The caption's pixels as the heatmap drew them, and as the font itself draws the same lines."""
    size, lines = heatmap.banner_layout(heatmap.caption_lines(result), display.shape[1], display.shape[0])
    font = ImageFont.truetype(str(heatmap.FONT), size, layout_engine=ImageFont.Layout.BASIC)
    step = size + size // 4
    top = picture.height - (len(lines) * step + 10) + 4  # where the banner's first line starts
    own = Image.new("RGB", (picture.width, picture.height - top), (0, 0, 0))
    for number, line in enumerate(lines):
        ImageDraw.Draw(own).text((4, number * step), line, fill=(255, 255, 255), font=font)
    return np.asarray(picture)[top:], np.asarray(own)


def test_a_heatmap_caption_in_spanish_renders_its_accents():
    display = np.full((512, 400), 90, np.uint8)
    heat = np.zeros((8, 8)); heat[3, 4] = 1.0
    result = Result("a.png", "viral_pneumonia", (0.1, 0.1, 0.7, 0.1), refer=True)
    with using("es"):
        lines = heatmap.caption_lines(result)
        picture = heatmap.heat_overlay(result, display, heat)
        drawn, own = _banner_lines(picture, result, display)
    assert any(ch in "".join(lines) for ch in "áéíóúñ"), lines  # "Neumonía viral", "diagnóstico"
    assert picture.size == (400, 512)  # the picture keeps the display image's size
    assert np.array_equal(drawn, own)  # every glyph as DejaVu Sans draws it: accents, not boxes
    font = ImageFont.truetype(str(heatmap.FONT), 20)
    assert font.getmask("í").getbbox() != font.getmask("\ufffe").getbbox()  # the font has the glyph, not .notdef
    _size, wrapped = heatmap.banner_layout(lines, 400, 512)
    assert all(ImageFont.truetype(str(heatmap.FONT), _size).getlength(line) <= 392 for line in wrapped)


@pytest.mark.parametrize("width,height", [(256, 256), (320, 400), (1024, 1024)])
def test_a_caption_fits_its_picture_at_a_readable_size(width, height):
    with using(TRANSLATED[-1]):  # the longest words
        lines = heatmap.caption_lines(Result("a.png", "lung_opacity", (0.1, 0.7, 0.1, 0.1), refer=True))
    size, wrapped = heatmap.banner_layout(lines, width, height)
    font = ImageFont.truetype(str(heatmap.FONT), size)
    assert size >= heatmap.MIN_FONT_PX and size <= max(heatmap.MIN_FONT_PX, width // 24)
    assert all(font.getlength(line) <= width - 8 or " " not in line for line in wrapped)  # wrapped to the width
    assert " ".join(wrapped).split() == " ".join(lines).split()  # every word kept, in order
    assert size == heatmap.MIN_FONT_PX or len(wrapped) * (size + size // 4) + 10 <= heatmap.MAX_BANNER_SHARE * height


def _rows(report: str) -> list[dict]:
    return list(csv.DictReader(line for line in report.splitlines() if not line.startswith("#")))


def test_the_same_stick_in_english_and_in_each_language_gives_the_same_codes_probabilities_and_columns(
        usb_stick, edge_bundle, tmp_path, monkeypatch):
    runs = {}
    for code in (SOURCE, *TRANSLATED):
        result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format",
                                           "csv", "--language", code])
        assert result.exit_code == 1, result.output  # the stick has unreadable files: error rows, exit 1
        runs[code] = _rows(result.stdout)
    english = runs[SOURCE]
    worded = ("label_text", "reason")
    for code in TRANSLATED:
        assert list(runs[code][0]) == list(english[0])  # the same columns, in the same order
        assert [{k: v for k, v in row.items() if k not in worded} for row in runs[code]] == \
            [{k: v for k, v in row.items() if k not in worded} for row in english]
        with using(code):
            assert all(row["label_text"] == in_words(row["label"]) for row in runs[code])
        assert any(a["reason"] != b["reason"] for a, b in zip(runs[code], english) if a["reason_codes"])
    monkeypatch.setenv("CXR_EDGE_LANGUAGE", TRANSLATED[0])
    by_environment = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format",
                                               "csv"])
    assert _rows(by_environment.stdout) == runs[TRANSLATED[0]]
    refused = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--language", "xx"])
    assert refused.exit_code == 2 and "this box has no catalogue for it; choose one of en, " in refused.output
    assert language.current() == SOURCE  # the command's language ended with it
    # a usage error found after the language was read leaves the process's language as it was
    wrong = CliRunner().invoke(main, ["classify", "--language", TRANSLATED[0], str(tmp_path / "no-such-stick")])
    assert wrong.exit_code == 2 and language.current() == SOURCE and in_words("lung_opacity") == "Lung opacity"


class _Text(HTMLParser):
    """A page's text as a reader sees it (no styles, no attributes)."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self.skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


ENGLISH_PART = re.compile(r'<(span|div)[^>]*\blang="en"[^>]*>.*?</\1>', re.S)


def page_text(page: str) -> str:
    """The page's text but for what it marks as English (lang="en": a decoder's error message, stored as the box
    wrote it; the language switch's "English")."""
    parser = _Text()
    parser.feed(ENGLISH_PART.sub("", page) if '<html lang="en">' not in page else page)
    return html.unescape(" ".join(parser.parts))


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_stick_report_in_each_language_shows_no_english_sentence_of_the_catalogue(
        usb_stick, edge_bundle, tmp_path, code):
    report = tmp_path / f"report-{code}.html"
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--output",
                                       str(report), "--html-heatmaps", "--language", code])
    assert result.exit_code == 1, result.output
    page = report.read_text(encoding="utf-8")
    assert f'<html lang="{code}">' in page
    with using(code):
        from cxr_edge import notice

        assert notice() in page_text(page)
    assert english_in(page_text(page), code) == []
    english = tmp_path / "report-en.html"
    CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--output", str(english)])
    assert english_in(page_text(english.read_text(encoding="utf-8")), code)  # the check finds English where it is
