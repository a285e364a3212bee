"""Proof that the notebook guard bites.

The chapters are committed with their outputs and the book shows those outputs without
running anything, so nbval (configured in pytest.ini, sanitizers in tests/sanitize.cfg) is
what keeps the printed numbers honest. These tests run nbval, with the project's own
pytest.ini and sanitize file, on a tiny notebook written to a temporary folder:

* stored outputs that match a fresh run pass, including a memory address that differs
  between runs (the sanitizer's job);
* one stored number changed ("2" -> "3") fails;
* a float printed at full precision may differ in its last digits (floating-point noise),
  but not at the 8th decimal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "sanitize.cfg"


def make_notebook(stored_sum: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    sum_cell = nbformat.v4.new_code_cell("print(1 + 1)", execution_count=1)
    sum_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored_sum + "\n")]
    # A default repr: its address differs in every kernel, the sanitizer must mask it.
    addr_cell = nbformat.v4.new_code_cell("print(object())", execution_count=2)
    addr_cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="<object object at 0x7f00deadbeef>\n")
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# nbval guard"), sum_cell, addr_cell]
    return nb


def run_nbval(notebook: Path) -> subprocess.CompletedProcess[str]:
    """`pytest` on one notebook, with the project's pytest.ini (so --nbval and the sanitize
    file come from the same configuration `make test` uses)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", str(notebook)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, timeout=300,
    )


@pytest.fixture
def notebook_path(tmp_path: Path) -> Path:
    return tmp_path / "guard.ipynb"


def test_sanitize_file_is_read_by_nbval() -> None:
    patterns = get_sanitize_patterns(SANITIZE.read_text())
    assert len(patterns) == 5, patterns  # a malformed entry would be dropped silently
    for regex, _ in patterns:
        re.compile(regex)


def test_matching_outputs_pass(notebook_path: Path) -> None:
    nbformat.write(make_notebook("2"), notebook_path)
    result = run_nbval(notebook_path)
    assert result.returncode == 0, result.stdout
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout


def test_a_changed_stored_number_fails(notebook_path: Path) -> None:
    nbformat.write(make_notebook("3"), notebook_path)
    result = run_nbval(notebook_path)
    assert result.returncode == 1, result.stdout
    assert re.search(r"\b1 failed, 1 passed\b", result.stdout), result.stdout


def make_float_notebook(stored: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("print(0.1 + 0.2)", execution_count=1)  # 0.30000000000000004
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    nb.cells = [cell]
    return nb


@pytest.mark.parametrize("stored,passes", [
    ("0.30000000000000004", True),   # exactly what Python prints
    ("0.30000000000000021", True),   # differs only in floating-point noise
    ("0.30000001000000004", False),  # differs at the 8th decimal: a real change
])
def test_full_precision_floats_compare_to_eight_decimals(notebook_path: Path, stored: str, passes: bool) -> None:
    nbformat.write(make_float_notebook(stored), notebook_path)
    result = run_nbval(notebook_path)
    assert (result.returncode == 0) == passes, result.stdout
