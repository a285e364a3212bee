"""Shared fixtures for the book-level tests (test_book.py, test_browser.py).

The book is built once per pytest session, exactly as `make book` builds it
(`jupyter-book build . --all -W -n --keep-going`), into the usual `_build/html`.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
# Prepared by `make mathjax` (part of `make book` / `make test`); see _config.yml.
MATHJAX_EXTRA = ROOT / "_build" / "mathjax" / "_static" / "mathjax"
BUILD_CMD = ["jupyter-book", "build", ".", "--all", "-W", "-n", "--keep-going"]


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
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), *BUILD_CMD[1:]]
    proc = subprocess.run(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, timeout=1800,
    )
    return BookBuild(proc.returncode, proc.stdout, HTML)


@pytest.fixture(scope="session")
def built_html(book_build: BookBuild) -> Path:
    """The built site; fails (rather than testing a stale site) if the build failed."""
    if book_build.returncode != 0 or not (book_build.html / "index.html").is_file():
        pytest.fail("the book build failed; see test_book.py::test_build_succeeds_without_warnings")
    return book_build.html
