"""Remove volatile metadata from executed notebooks.

``jupyter execute`` records per-cell timestamps (``metadata.execution``);
they change on every run and would make every re-execution a diff of
hundreds of lines. This script deletes them (and the kernel's ``widgets``
state, if any) and writes the notebook back only if something changed.

Usage: ``python scripts/clean_notebooks.py book/*.ipynb`` (``make notebooks`` runs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VOLATILE_CELL_KEYS = ("execution",)
VOLATILE_NOTEBOOK_KEYS = ("widgets",)


def clean(nb: dict) -> bool:
    """Strip volatile metadata in place; return whether anything was removed."""
    changed = False
    for key in VOLATILE_NOTEBOOK_KEYS:
        changed |= nb.get("metadata", {}).pop(key, None) is not None
    for cell in nb.get("cells", []):
        for key in VOLATILE_CELL_KEYS:
            changed |= cell.get("metadata", {}).pop(key, None) is not None
    return changed


def main(paths: list[str]) -> int:
    for p in map(Path, paths):
        nb = json.loads(p.read_text(encoding="utf-8"))
        if clean(nb):
            p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"cleaned {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
