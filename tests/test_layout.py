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


def test_the_readme_layout_table_names_every_module():
    """Each module of the four packages appears in its row of README's layout table (sub-packages
    as ``folder/`` then their modules; cocotb benches as ``tb_*.py``)."""
    rows = {}
    for line in (paths.REPO / "README.md").read_text().splitlines():
        if line.startswith("| `") and "/` |" in line:
            folder = line.split("`")[1].rstrip("/")
            rows[folder] = line
    missing = []
    for package in FLOW:
        for path in sorted((paths.REPO / package).rglob("*.py")):
            relative = path.relative_to(paths.REPO / package)
            if path.name == "__init__.py" or (package == "sim" and path.name.startswith("tb_")):
                continue
            names = [f"`{part}/`" for part in relative.parts[:-1]] + [f"`{relative.name}`"]
            if not all(name in rows.get(package, "") for name in names):
                missing.append(f"{package}/{relative}")
    assert missing == [], f"not in README's layout table: {', '.join(missing)}"
