"""Helpers shared by the chapter tests: the values a chapter glued and the text a cell printed."""

from __future__ import annotations

import ast

import nbformat
import pytest


def glued_values(nb) -> dict:
    """Every value the notebook glued (``mh.glue``), parsed from its stored outputs."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if meta:
                out[meta["name"]] = ast.literal_eval(o["data"][meta["mime_prefix"] + "text/plain"])
    return out


def output_of(nb, snippet: str) -> str:
    """The stored text output (stream or text/plain) of the one code cell whose source contains ``snippet``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and snippet in c.source]
    assert len(cells) == 1, f"{len(cells)} cells contain {snippet!r}"
    texts = []
    for o in cells[0].outputs:
        if o.output_type == "stream":
            texts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            texts.append(o["data"]["text/plain"])
    return "\n".join(texts)


def notebook_fixtures(path):
    """Module-scoped fixtures ``nb`` (the stored notebook) and ``glued`` (its glued values).

    Use as ``nb, glued = notebook_fixtures(NOTEBOOK)`` at a test module's top level.
    """

    @pytest.fixture(scope="module")
    def nb():
        return nbformat.read(path, as_version=4)

    @pytest.fixture(scope="module")
    def glued(nb) -> dict:
        """Every value the notebook glued, parsed from its stored outputs."""
        return glued_values(nb)

    return nb, glued
