"""cxr_edge's subpackages import one way, in the order an image meets them (edge/README.md has the map): a
module may import from its own subpackage, from those before it, and from the package's base (`cxr_edge`,
`labels`, `reasons`, `atomic`, `csv_cells`), never from one after it. Lazy imports inside functions count too."""

import ast
import re
from pathlib import Path

import cxr_edge

ORDER = ("inputs", "models", "bundle", "pictures", "run", "site", "reports", "record", "node", "web", "cli")
BASE = ("__init__.py", "atomic.py", "csv_cells.py", "labels.py", "language.py", "reasons.py")
PACKAGE = Path(cxr_edge.__file__).parent


def _layer(module: str) -> int:
    parts = module.split(".")
    return ORDER.index(parts[1]) if len(parts) > 1 and parts[1] in ORDER else -1


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cxr_edge"):
            if node.module == "cxr_edge":  # `from cxr_edge import inputs` names a subpackage
                yield from (f"cxr_edge.{alias.name}" for alias in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("cxr_edge"))


def test_every_module_sits_in_a_subpackage_of_the_map():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == sorted(BASE)
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(ORDER)


def test_imports_between_subpackages_go_one_way():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if path.name != "__init__.py" and path.parent == PACKAGE:
            continue  # the base imports nothing of the package's subpackages (checked below)
        upward += [(module, target) for target in _imports(path) if _layer(target) > _layer(module)]
    assert not upward, upward
    for name in BASE:
        assert all(_layer(target) < 0 for target in _imports(PACKAGE / name)), name


def test_the_public_api_resolves_lazily():
    import subprocess
    import sys

    code = ("import sys, cxr_edge\nassert 'cxr_edge.run.classify' not in sys.modules\n"
            "assert cxr_edge.load_bundle.__module__ == 'cxr_edge.bundle.load'\n"
            "assert set(cxr_edge.__all__) <= set(dir(cxr_edge))\n"
            "for name in cxr_edge.__all__: getattr(cxr_edge, name)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM|CREATE TABLE|ALTER TABLE|PRAGMA)\b\s+\S")
STATE = PACKAGE / "node" / "state"


def _sql_strings(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and SQL.search(node.value)]


def test_sql_lives_in_the_state_package_only():
    """The node's state layer (cxr_edge.node.state) is the one place with SQL: the web, the CLI, the worker and the
    benchmarks call its functions."""
    outside = [*(p for p in PACKAGE.rglob("*.py") if STATE not in p.parents),
               *(PACKAGE.parents[1] / "benchmarks").glob("*.py")]
    found = {str(p.relative_to(PACKAGE.parents[1])): strings for p in outside if (strings := _sql_strings(p))}
    assert not found, found
    assert _sql_strings(STATE / "reviews.py")  # the check finds SQL where there is some
