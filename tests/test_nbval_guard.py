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

The notebooks are written once per module and checked in two nbval runs (pytest
subprocesses, serial: `-n 0`) instead of one run each, which saves three pytest start-ups:
one run over the notebooks that must pass (its exit code must be 0), one over those that
must fail (exit code 1). Each test then reads its own notebook's results from the report
of its run (`-rA`: one PASSED or FAILED line per cell).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
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


def run_nbval(*notebooks: Path) -> subprocess.CompletedProcess[str]:
    """`pytest` on notebooks of one folder, with the project's pytest.ini (so --nbval and the
    sanitize file come from the same configuration `make test` uses), in one process (`-n 0`).
    The folder is the rootdir, so that the report names each notebook."""
    folder = notebooks[0].parent
    assert all(nb.parent == folder for nb in notebooks)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(folder),
         "-p", "no:cacheprovider", "-n", "0", "-rA", *map(str, notebooks)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, timeout=300,
    )


def outcomes(result: subprocess.CompletedProcess[str], notebook: Path) -> Counter:
    """{"PASSED": n, "FAILED": m} for the cells of one notebook of the run (from -rA)."""
    found = Counter(m[1] for m in re.finditer(rf"^(PASSED|FAILED) (?:\S*/)?{re.escape(notebook.name)}::", result.stdout, re.M))
    assert found, f"no result for {notebook.name}:\n{result.stdout}"
    return found


def make_float_notebook(stored: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("print(0.1 + 0.2)", execution_count=1)  # 0.30000000000000004
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    nb.cells = [cell]
    return nb


FLOATS = [
    ("0.30000000000000004", True),   # exactly what Python prints
    ("0.30000000000000021", True),   # differs only in floating-point noise
    ("0.30000001000000004", False),  # differs at the 8th decimal: a real change
]


@pytest.fixture(scope="module")
def guard_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every guard notebook, written and run by nbval: name -> (notebook, the run it was in)."""
    folder = tmp_path_factory.mktemp("nbval-guard")
    notebooks = {"matching": (make_notebook("2"), True), "changed": (make_notebook("3"), False)}
    notebooks |= {f"float-{stored}": (make_float_notebook(stored), passes) for stored, passes in FLOATS}
    paths = {}
    for i, (name, (nb, _)) in enumerate(notebooks.items()):
        paths[name] = folder / f"guard{i}.ipynb"
        nbformat.write(nb, paths[name])
    passing = run_nbval(*(paths[n] for n, (_, passes) in notebooks.items() if passes))
    failing = run_nbval(*(paths[n] for n, (_, passes) in notebooks.items() if not passes))
    assert passing.returncode == 0, passing.stdout  # nothing in the passing run may fail
    assert failing.returncode == 1, failing.stdout  # tests failed (not an error of pytest)
    return {n: (paths[n], passing if passes else failing) for n, (_, passes) in notebooks.items()}


def test_sanitize_file_is_read_by_nbval() -> None:
    patterns = get_sanitize_patterns(SANITIZE.read_text())
    assert len(patterns) == 5, patterns  # a malformed entry would be dropped silently
    for regex, _ in patterns:
        re.compile(regex)


def test_matching_outputs_pass(guard_runs) -> None:
    notebook, result = guard_runs["matching"]
    assert outcomes(result, notebook) == {"PASSED": 2}, result.stdout


def test_a_changed_stored_number_fails(guard_runs) -> None:
    notebook, result = guard_runs["changed"]
    assert outcomes(result, notebook) == {"PASSED": 1, "FAILED": 1}, result.stdout


@pytest.mark.parametrize("stored,passes", FLOATS)
def test_full_precision_floats_compare_to_eight_decimals(guard_runs, stored: str, passes: bool) -> None:
    notebook, result = guard_runs[f"float-{stored}"]
    assert outcomes(result, notebook) == ({"PASSED": 1} if passes else {"FAILED": 1}), result.stdout
