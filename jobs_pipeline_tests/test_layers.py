"""Imports point down the layers only (docs/architecture.md): a module imports its own package,
`settings`, and the packages its layer may use, and nothing above."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jobs_pipeline"

# What each part of the package may import besides itself and `settings`.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "settings": frozenset(),
    "calc": frozenset(),
    "perfdb": frozenset({"calc"}),
    "jobs": frozenset({"calc", "perfdb"}),
    "report": frozenset({"calc", "perfdb"}),
    "demo": frozenset({"calc", "perfdb", "jobs"}),
    "orchestration": frozenset({"calc", "perfdb", "jobs", "report"}),
    "definitions": frozenset({"calc", "perfdb", "jobs", "report", "orchestration"}),
    "cli": frozenset({"calc", "perfdb", "jobs", "report", "demo", "orchestration"}),
}


def _part(module: str) -> str | None:
    """The part of the package a dotted module name belongs to, or None outside it."""
    names = module.split(".")
    if names[0] != "jobs_pipeline" or len(names) < 2:
        return None
    return names[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from jobs_pipeline import jobs` names the part in the alias.
            if node.module == "jobs_pipeline":
                found.update(f"jobs_pipeline.{alias.name}" for alias in node.names)
    return found


def _violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "__init__.py":
            continue
        own = relative.parts[0].removesuffix(".py")
        allowed = MAY_IMPORT.get(own)
        assert allowed is not None, f"{relative}: a part of the package with no layer: {own}"
        for module in _imports(path):
            part = _part(module)
            if part is None or part in (own, "settings") or part in allowed:
                continue
            found.append(f"jobs_pipeline/{relative} imports {module}")
    return found


def test_imports_point_down_the_layers() -> None:
    assert _violations() == []


def test_the_check_sees_an_import_that_runs_back_up(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from jobs_pipeline.orchestration.ops import run_step\nimport os\n")
    assert _imports(module) == {"jobs_pipeline.orchestration.ops", "os"}
    assert _part("jobs_pipeline.orchestration.ops") == "orchestration"
    assert "orchestration" not in MAY_IMPORT["jobs"]
