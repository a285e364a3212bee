#!/usr/bin/env python3
"""Point every chapter's Colab setup cell at the repository named in _config.yml.

    make sync-colab                         # = .venv/bin/python scripts/sync_colab.py
    .venv/bin/python scripts/sync_colab.py --check   # report, change nothing (exit 1 if stale)

On Colab a chapter arrives alone, without `mlmhelpers`. The first code cell of every chapter
(book/*.ipynb) is therefore a setup cell, tagged `remove-cell` so the book does not show it,
that does nothing unless `google.colab` is imported, and on Colab clones the course
repository and puts it on `sys.path`. The repository it clones is written in the cell as

    repo = "https://github.com/<owner>/<name>"

and must equal `repository: url:` in _config.yml, the one line to change when the course is
published. After changing that line, run `make sync-colab` and commit the chapters; the
tests (tests/test_colab_cell.py) fail while any chapter still names another URL.

Only that line of the setup cell is changed; the notebook is written back in Jupyter's own
format (nbformat), so the diff is that one line per chapter.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB_GUARD = re.compile(r"""^if\s+["']google\.colab["']\s+in\s+sys\.modules\s*:""", re.M)
REPO_LINE = re.compile(r"""^(?P<prefix>\s*repo\s*=\s*)(?P<quote>["'])(?P<url>[^"'\n]+)(?P=quote)""", re.M)


def config_url(root: Path = ROOT) -> str:
    """`repository.url` of _config.yml."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"]


def chapters(root: Path = ROOT) -> list[Path]:
    """Every chapter notebook of the book (listed in _toc.yml or not yet)."""
    return sorted((root / "book").glob("*.ipynb"))


def setup_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The chapter's first code cell if it is the Colab setup cell, else None."""
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first is None or not COLAB_GUARD.search(first.source):
        return None
    return first


def setup_url(cell: nbformat.NotebookNode) -> str | None:
    m = REPO_LINE.search(cell.source)
    return m["url"] if m else None


def sync(path: Path, url: str, check: bool = False) -> bool:
    """Make the setup cell of one chapter name `url`; True if it named another one (and,
    unless `check`, was rewritten). A chapter without a recognisable setup cell is an error."""
    nb = nbformat.read(path, as_version=4)
    cell = setup_cell(nb)
    if cell is None or setup_url(cell) is None:
        raise ValueError(f"{path}: the first code cell is not the Colab setup cell with a "
                         'repo = "https://..." line')
    if setup_url(cell) == url:
        return False
    if not check:
        cell.source = REPO_LINE.sub(lambda m: f"{m['prefix']}{m['quote']}{url}{m['quote']}", cell.source, count=1)
        nbformat.write(nb, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report chapters that are out of date")
    args = parser.parse_args(argv)
    url = config_url()
    stale, errors = [], []
    for path in chapters():
        try:
            if sync(path, url, check=args.check):
                stale.append(path.relative_to(ROOT).as_posix())
        except ValueError as exc:
            errors.append(str(exc))
    if stale:
        verb = "name another repository than" if args.check else "now clone"
        print(f"setup cells that {verb} {url}: {', '.join(stale)}")
    else:
        print(f"every chapter's setup cell clones {url}")
    for error in errors:
        print(error, file=sys.stderr)
    return 2 if errors else 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
