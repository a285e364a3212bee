"""requirements.txt alone runs every chapter: what Binder builds and a student installs.

A fresh virtual environment, `_build/runtime-venv`, is created once per run (`python -m venv`,
from the same Python as the development environment; runtime.txt names the version Binder
uses) and gets `requirements.txt` and nothing else: no Jupyter Book, MyST-NB, nbval, nbformat
or nbclient. The packages are installed by uv's pip interface (`uv pip install -r
requirements.txt`; uv is pinned in requirements-dev.txt), which installs the same pinned
requirements and resolves their dependencies from PyPI like pip, from uv's cache after the
first run, in about a second instead of pip's 40. Which installer fills the environment does
not matter to the check: what matters is that nothing but requirements.txt went in, which the
probe below verifies from inside the kernel. Python writes the byte-code caches of the
environment the first time a module is imported (as in a student's environment), so the
chapters after the first do not compile numpy, pandas and scipy again.

Every chapter's *launch notebook* (what Binder and Colab open: the chapter's own code cells
with the book's outputs, written by the book build to _build/launch/; see
tests/test_launch_notebooks.py) is then run top to bottom by
scripts/run_notebooks.py, with that environment's own interpreter and its `python3` kernel;
the runner needs only `jupyter_client`, which ipykernel depends on. Any error fails the
chapter's test, and so does any cell whose fresh output differs from the stored one (the
book's), compared as nbval compares (--compare, with tests/sanitize.cfg). The chapters call
`from mlmhelpers import glue`, which does nothing without MyST-NB, so they run here
unchanged; the launch notebooks carry no glue records. Each chapter is its own work unit
for pytest-xdist (conftest.py: unit_of), so the chapters spread over both workers; the
environment is built once per run and shared (conftest.py: `once`).

Takes a few seconds to build the environment plus the chapters' own run time (see the
durations printed at the end). Skip it locally with `MLM_SKIP_RUNTIME_ENV=1 make test`;
with CI=true (as in CI) it always runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import timed

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "_build" / "runtime-venv"
RUNNER = ROOT / "scripts" / "run_notebooks.py"
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
LAUNCH = ROOT / "_build" / "launch"  # the launch notebooks, written by the book build
SANITIZE = ROOT / "tests" / "sanitize.cfg"  # nbval's sanitizers, also used by the runner
SKIP_VARIABLE = "MLM_SKIP_RUNTIME_ENV"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(SKIP_VARIABLE)) and not IN_CI,
    reason=f"{SKIP_VARIABLE} is set: the runtime-environment check (requirements.txt alone runs "
           "every chapter) was SKIPPED; it always runs in CI (CI=true)",
)


def clean_env() -> dict[str, str]:
    """The environment for the runtime interpreter: nothing pointing at the development
    environment, no user site-packages, and the venv's own kernel spec first. Byte-code
    caches are written as Python does by default (a machine may set PYTHONDONTWRITEBYTECODE;
    uv, unlike pip, does not compile at install time, so without this every kernel would
    compile numpy, pandas and scipy from source again)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH", "MPLBACKEND",
                        "PYTHONDONTWRITEBYTECODE"}}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


UV = Path(sys.executable).with_name("uv")  # pinned in requirements-dev.txt


def _make_runtime_venv() -> str | None:
    """Create the venv and install requirements.txt into it; None, or what failed."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    python = VENV / "bin" / "python"
    with timed("runtime venv: fresh venv + uv pip install -r requirements.txt"):
        shutil.rmtree(VENV, ignore_errors=True)
        steps = [
            [str(base), "-m", "venv", str(VENV)],
            # --python: into this venv only; uv ignores pip's configuration files, so it
            # installs from PyPI (or its cache), as Binder and a student do.
            [str(UV), "pip", "install", "--quiet", "--python", str(python), "-r", "requirements.txt"],
        ]
        for step in steps:
            proc = subprocess.run(step, cwd=ROOT, env=clean_env(), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
            if proc.returncode != 0:
                return f"{' '.join(step)} failed:\n{proc.stdout[-4000:]}"
    return None


@pytest.fixture(scope="session")
def runtime_python(once) -> Path:
    """A fresh venv with requirements.txt installed, and nothing else (built once per run)."""
    assert UV.is_file(), f"{UV} is missing: uv is pinned in requirements-dev.txt (make setup)"
    error = once("runtime_venv", _make_runtime_venv)
    if error:
        pytest.fail(error)
    return VENV / "bin" / "python"


def run_notebooks(python: Path, *notebooks: Path, compare: bool = False) -> subprocess.CompletedProcess[str]:
    options = ["--compare", "--sanitize", str(SANITIZE)] if compare else []
    return subprocess.run(
        [str(python), str(RUNNER), *options, *map(str, notebooks)], cwd=ROOT, env=clean_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=3600,
    )


def kernel_info(output: str) -> dict:
    line = next((ln for ln in output.splitlines() if ln.startswith("kernel:")), None)
    assert line, f"the runner printed no kernel line:\n{output[-2000:]}"
    return json.loads(line.removeprefix("kernel:"))


def test_runtime_python_is_the_binder_version(runtime_python: Path) -> None:
    wanted = (ROOT / "runtime.txt").read_text(encoding="utf-8").strip().removeprefix("python-")
    version = subprocess.run([str(runtime_python), "-c", "import platform; print(platform.python_version())"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    assert version == wanted or version.startswith(wanted + "."), (
        f"runtime.txt says python-{wanted} (Binder), the runtime venv has Python {version}")


def test_runner_fails_on_an_error(runtime_python: Path, tmp_path: Path) -> None:
    """The runner is no rubber stamp: a notebook whose second cell raises fails, and a
    cell tagged raises-exception may raise."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")]
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    result = run_notebooks(runtime_python, bad)
    assert result.returncode == 1 and "ZeroDivisionError" in result.stdout, result.stdout
    info = kernel_info(result.stdout)
    assert Path(info["prefix"]).resolve() == VENV.resolve(), f"the kernel is not the runtime venv's: {info}"
    assert info["book_tools"] == [], f"book or test tools are importable in the runtime venv: {info['book_tools']}"

    nb.cells[1].metadata["tags"] = ["raises-exception"]
    nbformat.write(nb, bad)
    assert run_notebooks(runtime_python, bad).returncode == 0


def test_runner_compares_outputs(runtime_python: Path, tmp_path: Path) -> None:
    """--compare is no rubber stamp either: a stored output that a fresh run does not
    reproduce fails, a volatile part masked by tests/sanitize.cfg passes, glue records are
    ignored."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("print(2 + 2); print(hex(id(object())))")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="4\n0x7f0000000000\n"),
                    nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": "1"},
                                           metadata={"scrapbook": {"name": "k"}})]
    nb.cells = [cell]
    path = tmp_path / "outputs.ipynb"
    nbformat.write(nb, path)
    good = run_notebooks(runtime_python, path, compare=True)
    assert good.returncode == 0 and "outputs equal to the stored ones" in good.stdout, good.stdout
    cell.outputs[0]["text"] = "5\n0x7f0000000000\n"
    nbformat.write(nb, path)
    bad = run_notebooks(runtime_python, path, compare=True)
    assert bad.returncode == 1 and "DIFFERENT OUTPUT" in bad.stdout and "-stream stdout: 5" in bad.stdout, bad.stdout


# Each chapter is a work unit of its own under pytest-xdist (conftest.py: unit_of).
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_launch_notebook_runs_with_runtime_requirements_only(runtime_python: Path, book_build, chapter: Path) -> None:
    """The chapter's launch notebook (what Binder and Colab open: the chapter's own code
    cells, tests/test_launch_notebooks.py) runs top to bottom with requirements.txt alone,
    and every cell's output equals the one the book shows."""
    launch = LAUNCH / chapter.relative_to(ROOT)
    assert launch.is_file(), f"the book build wrote no launch notebook {launch.relative_to(ROOT)}"
    with timed("runtime venv: launch notebooks run, outputs compared"):
        result = run_notebooks(runtime_python, launch, compare=True)
    info = kernel_info(result.stdout)
    assert Path(info["prefix"]).resolve() == VENV.resolve(), f"the kernel is not the runtime venv's: {info}"
    assert info["book_tools"] == [], f"book or test tools are importable in the runtime venv: {info['book_tools']}"
    assert result.returncode == 0, (f"{launch.name} fails or differs from the book with requirements.txt "
                                    f"alone:\n{result.stdout[-6000:]}")
