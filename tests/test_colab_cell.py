"""Every chapter starts with the Colab setup cell, and the cell is harmless everywhere else.

On Colab a chapter arrives alone, without `mlmhelpers`; its first code cell (tagged
`remove-cell`, so the book does not show it: tests/test_book.py checks the pages) clones the
course repository and puts it on `sys.path`, but only when `google.colab` is imported. Checked
for every book/*.ipynb:

* the first code cell is that cell and is tagged `remove-cell`;
* the repository it clones is `_config.yml`'s `repository.url` (after changing that line
  when publishing: `make sync-colab`, see scripts/sync_colab.py);
* executed without `google.colab` it starts no process and changes nothing;
* executed with a stand-in `google.colab` module (processes recorded, not run) it clones
  that repository, puts the clone on `sys.path`, and installs only packages pinned exactly as
  in requirements.txt;
* `make sync-colab`'s function rewrites the URL, and only the URL, of a copied chapter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import sync_colab  # scripts/, on sys.path through conftest.py
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sync_colab.chapters(ROOT)
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$")


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        m = PIN.match(line.split("#")[0].strip())
        if m:
            found[m[1].lower()] = m[2]
    return found


def setup_source(path: Path) -> str:
    cell = sync_colab.setup_cell(nbformat.read(path, as_version=4))
    assert cell is not None, (
        f"{path.name}: the first code cell is not the Colab setup cell "
        '(an `if "google.colab" in sys.modules:` block; see an existing chapter)')
    return cell.source


class Recorder:
    """Stands in for everything that could start a process or change directory."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[list[str]] = []
        monkeypatch.setattr(subprocess, "run", self.run)
        for name in ("Popen", "call", "check_call", "check_output"):
            monkeypatch.setattr(subprocess, name, self.forbidden(name))
        for name in ("system", "popen", "chdir", "execv", "execvp"):
            monkeypatch.setattr(os, name, self.forbidden(f"os.{name}"))
        monkeypatch.setattr(sys, "path", list(sys.path))  # changes are undone after the test

    def run(self, args, *a, **kw):
        self.calls.append([str(x) for x in args])
        return subprocess.CompletedProcess(args, 0, "", "")

    def forbidden(self, name: str):
        def call(*args, **kwargs):
            self.calls.append([name, *map(str, args)])
            raise AssertionError(f"the setup cell called {name}{args}")
        return call


def run_cell(source: str) -> None:
    code = TransformerManager().transform_cell(source)  # %magics, as IPython would run them
    exec(compile(code, "<colab setup cell>", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_first_code_cell_is_the_tagged_setup_cell(path: Path) -> None:
    cell = sync_colab.setup_cell(nbformat.read(path, as_version=4))
    setup_source(path)
    assert "remove-cell" in cell.metadata.get("tags", []), f"{path.name}: setup cell not tagged remove-cell"
    url = sync_colab.setup_url(cell)
    assert url == sync_colab.config_url(ROOT), (
        f"{path.name}: the setup cell clones {url}, _config.yml names {sync_colab.config_url(ROOT)}: "
        "run `make sync-colab`")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_setup_cell_does_nothing_outside_colab(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    recorder = Recorder(monkeypatch)
    before = list(sys.path)
    run_cell(setup_source(path))
    assert recorder.calls == [], f"{path.name}: the setup cell ran {recorder.calls} outside Colab"
    assert sys.path == before, f"{path.name}: the setup cell changed sys.path outside Colab"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_setup_cell_on_colab_installs_the_course(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    recorder = Recorder(monkeypatch)
    run_cell(setup_source(path))
    clones = [c for c in recorder.calls if c[:2] == ["git", "clone"]]
    assert clones, f"{path.name}: on Colab the setup cell clones nothing: {recorder.calls}"
    url = sync_colab.config_url(ROOT)
    assert url in clones[0], f"{path.name}: clones {clones[0]}, not {url}"
    target = clones[0][-1]
    assert target in sys.path, f"{path.name}: the clone {target} is not put on sys.path"
    pinned = pins()
    for call in recorder.calls:
        if "pip" in call and "install" in call:
            for arg in call[call.index("install") + 1:]:
                if arg.startswith("-"):
                    continue
                m = PIN.match(arg)
                assert m and pinned.get(m[1].lower()) == m[2], (
                    f"{path.name}: installs {arg!r}; pin it as in requirements.txt ({pinned})")


def test_sync_colab_rewrites_only_the_url(tmp_path: Path) -> None:
    if not CHAPTERS:
        pytest.skip("no chapters yet")
    copy = tmp_path / CHAPTERS[0].name
    copy.write_bytes(CHAPTERS[0].read_bytes())
    new = "https://github.com/someone-else/published-course"
    assert sync_colab.sync(copy, new, check=True) is True  # check: reports, changes nothing
    assert copy.read_bytes() == CHAPTERS[0].read_bytes()
    assert sync_colab.sync(copy, new) is True
    assert sync_colab.sync(copy, new) is False  # idempotent
    old_lines = CHAPTERS[0].read_text(encoding="utf-8").splitlines()
    new_lines = copy.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert len(old_lines) == len(new_lines) and len(changed) == 1, changed
    assert new in changed[0][1] and sync_colab.config_url(ROOT) in changed[0][0]
