"""Imports point down the layers only (docs/architecture.md): a module imports its own package,
`settings`, and the packages its layer may use, and nothing above. In the tests, shared code lives
in conftest.py files and helper modules, never in a `test_*` module that others import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jobs_pipeline"
TESTS = Path(__file__).resolve().parent

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


def _test_modules_imported(path: Path, module: str) -> set[str]:
    """The `test_*` modules of the tests that the module at `path`, named `module`, imports:
    `import a.test_b`, `from a.test_b import c`, `from a import test_b` and the relative forms."""
    package = module.split(".")[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            names = [source, *(f"{source}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == TESTS.name and parts[-1].startswith("test_"):
                found.add(name)
    return found


def _test_module_imports() -> list[str]:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(TESTS.parent)
        module = ".".join(relative.with_suffix("").parts)
        found.extend(
            f"{relative} imports {name}" for name in sorted(_test_modules_imported(path, module))
        )
    return found


def test_no_module_of_the_tests_imports_a_test_module() -> None:
    offenders = _test_module_imports()
    assert not offenders, (
        "move what these imports take into the nearest conftest.py (fixtures) or into a helper "
        "module without the test_ prefix (helpers and constants):\n" + "\n".join(offenders)
    )


def test_the_check_sees_each_form_of_importing_a_test_module(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "import jobs_pipeline_tests.test_cli\n"
        "from jobs_pipeline_tests.perfdb.test_queue import new_job\n"
        "from jobs_pipeline_tests.orchestration import test_sensors\n"
        "from .test_celery import deployment\n"
        "from . import test_assets, processes\n"
        "from ..jobs.test_data_import_job import csv_file\n"
        "from jobs_pipeline_tests.orchestration.processes import wait_for\n"
        "from jobs_pipeline_tests.conftest import BACKENDS\n"
        "import pytest\n"
        "\n"
        "def later():\n"
        "    from jobs_pipeline_tests.test_progress import something\n"
    )
    assert _test_modules_imported(module, "jobs_pipeline_tests.orchestration.bad") == {
        "jobs_pipeline_tests.test_cli",
        "jobs_pipeline_tests.perfdb.test_queue",
        "jobs_pipeline_tests.orchestration.test_sensors",
        "jobs_pipeline_tests.orchestration.test_celery",
        "jobs_pipeline_tests.orchestration.test_assets",
        "jobs_pipeline_tests.jobs.test_data_import_job",
        "jobs_pipeline_tests.test_progress",
    }
