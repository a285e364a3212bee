"""Shared fixtures: the book build (test_book.py, test_browser.py) and the data and fits of the unit tests.

The book is built once per pytest run, exactly as `make book` builds it
(`jupyter-book build . --all -W -n --keep-going`), into the usual `_build/html`.

The run is spread over two pytest-xdist workers (`make test`: `-n 2`, pytest.ini). What
the run builds for several test files (the book, the student edition, the runtime venv of
test_runtime_env.py) is built once per run by whichever worker needs it first and shared
with the other through a file lock (`once()`, the pattern of pytest-xdist's documentation).
The work units (a test file, a notebook, a chapter of the runtime check) and their order,
long ones first, are defined below (unit_of, UNIT_FIRST).

The slow steps of the session (book build, student edition, runtime environment, browser)
record their duration with `timed()`; the workers send them to the controller, which prints
them at the end of the run.
"""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from filelock import FileLock  # filelock and pytest-xdist: pinned in requirements-dev.txt
from xdist.scheduler import LoadScopeScheduling

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the tests import the course's scripts
HTML = ROOT / "_build" / "html"
# Prepared by `make mathjax` (part of `make book` / `make test`); see _config.yml.
MATHJAX_EXTRA = ROOT / "_build" / "mathjax" / "_static" / "mathjax"
BUILD_ARGS = ["build", ".", "--all", "-W", "-n", "--keep-going"]  # as `make book`

TIMINGS: dict[str, float] = {}  # what -> seconds, printed by pytest_terminal_summary


@contextmanager
def timed(what: str):
    """Record how long the block takes under `what` (summed if used repeatedly)."""
    start = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[what] = TIMINGS.get(what, 0.0) + time.monotonic() - start


def pytest_sessionfinish(session) -> None:
    """On an xdist worker: hand this worker's durations to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["book_check_timings"] = dict(TIMINGS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """On the controller: collect the durations a worker measured."""
    for what, seconds in getattr(node, "workeroutput", {}).get("book_check_timings", {}).items():
        TIMINGS[what] = TIMINGS.get(what, 0.0) + seconds


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.section("durations of the book checks")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what:<58} {seconds:7.1f} s")


# --------------------------------------------------------------------------- work units
# Under pytest-xdist (`make test`: -n 2, pytest.ini: --dist loadscope) a work unit runs on one
# worker from start to end; the controller hands out whole units, one after the other, in the
# order of the collection (--no-loadscope-reorder). A unit is a test file (its module fixtures,
# such as the fits of the chapter tests, are then computed once) or a notebook (nbval runs its
# cells in one kernel); each chapter of the runtime-environment check is a unit of its own, so
# that those nine runs spread over both workers. (xdist's own `--dist loadgroup` would say the
# same with markers, but with pytest 9.2 it no longer groups anything: xdist 3.8 renames
# `item._nodeid`, which pytest 9.2 no longer reads.)
OWN_UNIT = ("tests/test_runtime_env.py::test_launch_notebook_runs_with_runtime_requirements_only[",)


def unit_of(nodeid: str) -> str:
    return nodeid if nodeid.startswith(OWN_UNIT) else nodeid.split("::", 1)[0]


class UnitScheduling(LoadScopeScheduling):
    """xdist's LoadScopeScheduling with the work units of unit_of()."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadscope":
        return UnitScheduling(config, log)
    return None


# The units start in this order: the browser checks (their worker builds the book on the way),
# the runtime venv (needs no book), the JupyterLab checks (they build the student edition);
# then the rest, longest first, so that the two workers finish together. The seconds are
# serial durations on this project's 2-core machine (`--durations`, 2026-12-03); only the
# order matters: a unit not listed is short and keeps its collection order at the end.
UNIT_FIRST = ["tests/test_browser.py", "tests/test_runtime_env.py", "tests/test_launch_jupyterlab.py"]
UNIT_SECONDS = {
    "book/08_counts_and_binary.ipynb": 17, "tests/test_bootstrap.py": 16,
    "book/09_uncertainty_and_p_values.ipynb": 13, "book/07_model_checking.ipynb": 12,
    "book/06_three_levels.ipynb": 11, "book/02_pooling_violent_arrests.ipynb": 10,
    "tests/test_nbval_guard.py": 10, "book/03_varying_slopes.ipynb": 9,
    "book/01_faculty_salaries.ipynb": 9, "tests/test_plots.py": 9, "tests/test_glm_response.py": 9,
    "book/05_how_lmer_works.ipynb": 8, "book/04_prediction.ipynb": 8, "tests/test_glmer.py": 8,
    "tests/test_student_edition.py": 7, "tests/test_docstrings.py": 5,
    "tests/test_chapter_counts.py": 5, "tests/test_properties.py": 5,
    "tests/test_launch_notebooks.py": 5, "tests/test_fit.py": 4, "tests/test_book.py": 2,
}
# the runtime-environment run of each launch notebook, by chapter
RUNTIME_SECONDS = {
    "08_counts_and_binary": 11, "02_pooling_violent_arrests": 10, "06_three_levels": 9,
    "09_uncertainty_and_p_values": 9, "03_varying_slopes": 8, "01_faculty_salaries": 7,
    "07_model_checking": 6, "04_prediction": 6, "05_how_lmer_works": 6,
}


def _seconds(unit: str) -> float:
    if unit.startswith(OWN_UNIT):
        return RUNTIME_SECONDS.get(unit.rsplit("[", 1)[1].removesuffix(".ipynb]"), 0)
    return UNIT_SECONDS.get(unit, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, float]:
        unit = unit_of(item.nodeid)
        if unit in UNIT_FIRST:
            return (UNIT_FIRST.index(unit), 0.0)
        return (len(UNIT_FIRST), -_seconds(unit))

    items.sort(key=rank)  # stable: tests keep their order within a unit


# --------------------------------------------------------------------------- built once per run

@pytest.fixture(scope="session")
def once(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """once(name, produce): produce() a single time per pytest run and share the result.

    Without xdist (worker_id "master") it simply calls produce(). Under xdist, the first
    worker to ask produces it while holding a file lock in the run's temporary folder (shared
    by the workers, new for every run) and pickles the result there; a worker that asks later
    waits for the lock and reads the result. If produce() raises, nothing is stored and the
    next worker to ask tries again."""
    def _once(name: str, produce: Callable[[], object]):
        if worker_id == "master":
            return produce()
        shared = tmp_path_factory.getbasetemp().parent / f"{name}.pickle"
        with FileLock(str(shared) + ".lock"):
            if shared.is_file():
                return pickle.loads(shared.read_bytes())
            value = produce()
            shared.write_bytes(pickle.dumps(value))
            return value

    return _once


@dataclass
class BookBuild:
    returncode: int
    output: str  # stdout and stderr of the build, interleaved
    html: Path

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.output.splitlines() if "WARNING" in line or "ERROR" in line]


def _build_book() -> BookBuild:
    shutil.rmtree(HTML, ignore_errors=True)  # whatever is there afterwards is from this build
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    with timed("book build (jupyter-book build -W)"):
        proc = subprocess.run(
            [str(jupyter_book), *BUILD_ARGS], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800,
        )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # jupyter-book colours its log always
    return BookBuild(proc.returncode, plain, HTML)


@pytest.fixture(scope="session")
def book_build(once) -> BookBuild:
    """Build the whole book once per run (all pages, warnings are errors) and return the result."""
    if not (MATHJAX_EXTRA / "tex-mml-chtml.js").is_file():
        pytest.fail(
            f"{MATHJAX_EXTRA.relative_to(ROOT)} is missing: run the tests with `make test`, "
            "which prepares the offline MathJax copy before calling pytest"
        )
    return once("book_build", _build_book)


@pytest.fixture(scope="session")
def built_html(book_build: BookBuild) -> Path:
    """The site written by this session's build. A build that only warned (--keep-going)
    still wrote every page, so the site checks run and report on their own."""
    if not (book_build.html / "index.html").is_file():
        pytest.fail("the book build wrote no site; see test_book.py::test_build_succeeds_without_warnings")
    return book_build.html


# --------------------------------------------------------------------------- the browser
# One headless Chromium for the session (Playwright's sync API allows one instance at a time):
# test_browser.py (the book's pages) and test_launch_jupyterlab.py (notebooks in JupyterLab).

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
# Schemes that never leave the machine.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome-error"}


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname == LOCAL_HOST


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed (apt-get install chromium): browser checks skipped")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # fresh user-data-dir
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            service_workers="block",
        )
        # Nothing may leave the machine: block (and so record) every other host.
        context.route(
            lambda url: not is_local(url),
            lambda route: route.abort("blockedbyclient"),
        )
        try:
            yield context
        finally:
            context.close()


# --------------------------------------------------------------------------- student edition
# Built once per session, the way `make student` builds it (scripts/student_edition.py), for
# test_student_edition.py (no solution survives) and test_launch_jupyterlab.py (a handout
# opened in JupyterLab).

@dataclass
class StudentEdition:
    returncode: int
    log: str
    removed: dict  # staged page -> removed solutions
    notebooks: list[Path]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.log.splitlines() if "WARNING" in line or "ERROR" in line]


def _build_student_edition() -> StudentEdition:
    with timed("student edition (stage, strip, build, notebooks)"):
        import student_edition as se  # scripts/

        src = se.stage()
        removed = se.strip_tree(src)
        code, log = se.build(src)
        notebooks = se.write_handouts(src) if (se.HTML / "index.html").is_file() else []
    return StudentEdition(code, log, removed, notebooks)


@pytest.fixture(scope="session")
def student(book_build, once) -> StudentEdition:
    """`make student`, step by step, once per run (after the full build: it needs the MathJax
    copy and is compared with the full site)."""
    return once("student_edition", _build_student_edition)


# --------------------------------------------------------------------------- shared data and fits
# Loaded and fitted once per session for the unit tests (test_fit, test_lm, test_inference,
# test_tidy). Tests must not modify them; test_fit checks that lmer() never does.

@pytest.fixture(scope="session")
def arrests():
    """Lecture B's county data."""
    import mlmhelpers as mh

    return mh.load_arrests()


@pytest.fixture(scope="session")
def m_ri(arrests):
    """Lecture B's random-intercept model, violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)."""
    import mlmhelpers as mh

    return mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", arrests)
