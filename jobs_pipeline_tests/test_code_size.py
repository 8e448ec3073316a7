"""Rooms a newcomer can find their way in: no module over 600 lines and no function over 80
lines in the package and the benchmarks (migrations excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEARCHED = ("jobs_pipeline", "benchmarks")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(
        path
        for folder in SEARCHED
        for path in (REPO / folder).rglob("*.py")
        if "migrations" not in path.relative_to(REPO).parts
    )


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, lines from `def` to the end) of every function, nested ones too."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                found.append((name, node.end_lineno - node.lineno + 1))
            found += _functions(node, f"{name}.")
        else:
            found += _functions(node, prefix)
    return found


def oversized() -> dict[str, int]:
    """Every module and function over its limit, with its length in lines."""
    result = {}
    for path in _modules():
        relative = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            result[relative] = lines
        for name, length in _functions(ast.parse(text, filename=relative)):
            if length > MAX_FUNCTION_LINES:
                result[f"{relative}::{name}"] = length
    return result


def test_modules_and_functions_stay_small() -> None:
    found = oversized()
    assert not found, (
        f"over {MAX_MODULE_LINES} lines per module or {MAX_FUNCTION_LINES} per function: "
        + ", ".join(f"{name} ({length} lines)" for name, length in sorted(found.items()))
    )


def test_the_search_sees_the_package_and_its_long_functions() -> None:
    modules = {path.relative_to(REPO).as_posix() for path in _modules()}
    assert "jobs_pipeline/perfdb/feature_values.py" in modules
    assert "benchmarks/alarm_calc.py" in modules
    assert not any("migrations" in name for name in modules)
    nested = ast.parse("class A:\n    def f(self):\n        def g():\n            pass\n")
    assert _functions(nested) == [("A.f", 3), ("A.f.g", 2)]
