"""Hygiene of every chapter notebook as stored (nbval checks that a fresh run matches it).

Chapter-specific content is tested in ``tests/test_chapter_*.py``; the Colab
setup cell in ``tests/test_colab_cell.py``; the rendered pages (headings,
captions, alt text, exercises) in ``tests/test_book.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_top_to_bottom(path):
    counts = [c["execution_count"] for c in _code_cells(_load(path))]
    assert counts == list(range(1, len(counts) + 1)), "re-run the notebook top to bottom (make notebooks)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_errors_warnings_or_object_reprs(path):
    for cell in _code_cells(_load(path)):
        src = _text(cell["source"])
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", src
            assert not (out["output_type"] == "stream" and out.get("name") == "stderr"), \
                f"stderr output (a warning?) in: {src[:80]!r}"
            text = _text(out.get("text", "")) + _text(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"<(Axes|Figure|matplotlib)[^>]*at 0x|<Axes:", text), src
            assert not re.search(r"\bnp\.float64\(", text), f"NumPy scalar repr in: {src[:80]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_volatile_metadata(path):
    nb = _load(path)
    timed = [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})]
    assert not timed, f"cells {timed[:5]} store execution timestamps: run scripts/clean_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glue_keys_used_in_prose_are_stored(path):
    nb = _load(path)
    used = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            used |= set(GLUE_ROLE.findall(_text(cell["source"])))
    stored = set()
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                stored.add(name)
    assert used, "the chapter's prose uses no computed (glued) numbers"
    assert used <= stored, f"glue keys used but never stored: {sorted(used - stored)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glue_only_cells_are_hidden(path):
    """A code cell whose only outputs are glued values is tagged remove-cell (not shown)."""
    for cell in _code_cells(_load(path)):
        outs = cell.get("outputs", [])
        if outs and all(o.get("metadata", {}).get("scrapbook") for o in outs):
            assert "remove-cell" in cell.get("metadata", {}).get("tags", []), _text(cell["source"])[:120]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_links_the_notation_page_and_names_other_chapters(path):
    """Every chapter links the notation/glossary page; other chapters are linked by name,
    never as "the previous chapter" (which breaks when chapters move)."""
    prose = "\n".join(_text(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "markdown")
    assert "{doc}`notation`" in prose
    assert "previous chapter" not in prose.lower() and "in this lecture" not in prose.lower()


def test_notation_page_is_in_the_toc_and_defines_the_lectures():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert re.search(r"^  - file: book/notation\s*$", toc, re.M)
    page = (ROOT / "book" / "notation.md").read_text(encoding="utf-8")
    for term in ("**Lecture A.**", "**Lecture B.**", "**BLUP.**", "**Conditional mode.**", "θ (theta)"):
        assert term in page, term
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert "number for number" not in intro and "{doc}`notation`" in intro
