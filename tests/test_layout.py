"""The architecture's one rule for imports: data flows model → hw → sim → fpga, and so do imports.
A module may import its own package and the ones before it, never one after (function-level
imports included)."""

import ast
from pathlib import Path

from model import paths

FLOW = ("model", "hw", "sim", "fpga")


def imported_packages(path: Path):
    """(line, top-level package) of every absolute import in ``path``; relative ones stay inside."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def violations(root: Path) -> list[str]:
    found = []
    for rank, package in enumerate(FLOW):
        for path in sorted((root / package).rglob("*.py")):
            for line, target in imported_packages(path):
                if target in FLOW and FLOW.index(target) > rank:
                    found.append(f"{path.relative_to(root)}:{line} imports {target} ({package} comes "
                                 f"before {target} in {' → '.join(FLOW)})")
    return found


def test_imports_follow_the_data_flow():
    assert violations(paths.REPO) == []


def test_an_import_against_the_flow_is_found(tmp_path):
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "block.py").write_text("import numpy\nfrom model import paths\n\n"
                                              "def f():\n    from fpga.host import link\n")
    for package in ("model", "sim", "fpga"):
        (tmp_path / package).mkdir()
    assert violations(tmp_path) == ["hw/block.py:5 imports fpga (hw comes before fpga in "
                                    "model → hw → sim → fpga)"]
