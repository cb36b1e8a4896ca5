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


@pytest.mark.slow
def test_the_echoscu_and_storescu_lines_of_docs_box_work_as_written(tmp_path, edge_bundle):
    """docs/box.md's lines, run as written against a node (its port for 11112), on files of the syntaxes they name,
    written by `cxr-train synth --dicom`: echoed, every image stored and classified."""
    import subprocess

    from click.testing import CliRunner

    from cxr_train.cli import main
    from tests.node_harness import Node, _config, _free_port
    from tests.peers import tool

    tool("storescu")
    text = (REPO / "docs" / "box.md").read_text()
    block = re.search(r"<!-- storescu-lines -->\s*```bash\n(.*?)```", text, flags=re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert lines[0].startswith("echoscu") and all(line.startswith("storescu") for line in lines[1:])
    syntaxes = ["explicit"] * 6 + ["jpeg-lossless-sv1", "j2k-lossless"]  # Normal-1, COVID-1, COVID-2 as the lines say
    written = CliRunner().invoke(main, ["synth", str(tmp_path / "unit"), "--per-class", "2", "--size", "256", "--dicom",
                                        *(arg for name in syntaxes for arg in ("--syntax", name))])
    assert written.exit_code == 0, written.output
    port = _free_port()
    node = Node(_config(tmp_path, edge_bundle, port)).start()
    try:
        for line in lines:
            ran = subprocess.run(line.replace(" 11112 ", f" {port} ").replace(" 11112", f" {port}"), shell=True,
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60)
            said = ran.stdout + ran.stderr
            assert ran.returncode == 0 and "Success" in said and "Failed" not in said, (line, said)
        node.wait_classified(len(lines) - 1)
    finally:
        node.stop()
