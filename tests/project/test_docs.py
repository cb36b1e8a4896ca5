"""The README and docs/ as a newcomer meets them: every link leads somewhere, no install command that cannot
work, and a README short enough to be a front door."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", REPO / "edge" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_link_leads_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}, which does not exist"
        if anchor:
            assert linked.suffix == ".md" and anchor in _anchors(linked), \
                f"{page.name}: link to {target}: no such heading in {linked.name}"


def test_no_install_command_that_cannot_work():
    """cxr-edge is not on PyPI: the box installs from the box kit (tests/edge/node/test_box_kit.py installs one)."""
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"pip install (-U )?['\"]?cxr-edge\b", text), page.name
    assert "make box-kit" in (REPO / "README.md").read_text().split("## Contents")[0]  # on the first screen


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.split()) < 3000
    for section in ("Set-up: two commands", "For the clinic technician", "For the clinician", "For the ML engineer"):
        assert f"## {section}" in text and f"(#{_anchor(section)})" in text  # in the table of contents too
    for history in ("issue 16", "issue notes", "this session", "predates", "earlier runs here"):
        assert history not in text.lower()
