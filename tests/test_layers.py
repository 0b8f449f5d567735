"""The package keeps its shape: no import runs back up the layers, no room grows too big.

The layers are the import-linter contract in pyproject.toml (docs/architecture.md draws
them); `make lint` runs the same check.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "maildesk"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _lint_imports() -> str:
    found = Path(sys.executable).parent / "lint-imports"
    tool = str(found) if found.exists() else shutil.which("lint-imports")
    if tool is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return tool


def test_no_import_runs_back_up_the_layers() -> None:
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def _sources() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts]


def test_every_module_stays_under_the_size_limit() -> None:
    big = {
        str(p.relative_to(REPO)): n
        for p in _sources()
        if (n := p.read_text().count("\n")) >= MAX_MODULE_LINES
    }
    assert not big, f"modules of {MAX_MODULE_LINES} lines or more: {big}"


def test_no_function_is_longer_than_the_limit() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
