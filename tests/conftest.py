"""Shared fixtures: the book build (test_book.py, test_browser.py) and the data and fits of the unit tests.

The book is built once per pytest session, exactly as `make book` builds it
(`jupyter-book build . --all -W -n --keep-going`), into the usual `_build/html`.

The slow steps of the session (book build, student edition, runtime environment, browser)
record their duration with `timed()`; the durations are printed at the end of the run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

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


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.section("durations of the book checks")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what:<58} {seconds:7.1f} s")


@dataclass
class BookBuild:
    returncode: int
    output: str  # stdout and stderr of the build, interleaved
    html: Path

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.output.splitlines() if "WARNING" in line or "ERROR" in line]


@pytest.fixture(scope="session")
def book_build() -> BookBuild:
    """Build the whole book once (all pages, warnings are errors) and return the result."""
    if not (MATHJAX_EXTRA / "tex-mml-chtml.js").is_file():
        pytest.fail(
            f"{MATHJAX_EXTRA.relative_to(ROOT)} is missing: run the tests with `make test`, "
            "which prepares the offline MathJax copy before calling pytest"
        )
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


@pytest.fixture(scope="session")
def student(book_build) -> StudentEdition:
    """`make student`, step by step (after the full build: it needs the MathJax copy and is
    compared with the full site)."""
    with timed("student edition (stage, strip, build, notebooks)"):
        import student_edition as se  # scripts/

        src = se.stage()
        removed = se.strip_tree(src)
        code, log = se.build(src)
        notebooks = se.write_handouts(src) if (se.HTML / "index.html").is_file() else []
    return StudentEdition(code, log, removed, notebooks)


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
