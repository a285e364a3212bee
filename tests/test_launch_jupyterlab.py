"""The launch notebooks and a handout, opened in a real JupyterLab, read like the book.

A JupyterLab server (pinned in requirements-dev.txt) is started for the session on
127.0.0.1 with a random token and no browser, its settings, workspaces and runtime files in
a temporary folder (no user configuration is read; notebooks render in full, not windowed,
so that every cell is in the page; no news or update checks). It serves copies of this
session's launch notebooks (`_build/launch/`) and of the first handout of the student
edition. Debian's Chromium, driven by Playwright (the session's browser of conftest.py, shared with
tests/test_browser.py; skipped with a message without /usr/bin/chromium), opens each one and checks the rendered page:

* every cell of the file is in the notebook's DOM, every markdown cell rendered;
* no raw MyST is visible: no role (`{glue`, `{numref`, ...), directive fence or `(label)=`;
* math is typeset: MathJax elements for the math of the file, and no raw TeX (`$$`, `\\begin`,
  `\\frac`, ...) left in the rendered text;
* every image (figures in outputs, embedded attachments) has loaded;
* numbered figures and exercises show their number ("Fig. 2.1", "Exercise 2.1");
* gated solutions start folded (the cells under the solution heading are hidden);
* no console error, no request leaves 127.0.0.1.

A screenshot of each notebook (its top, and scrolled to its first figure) goes to
`_build/screenshots/launch__<name>.png`, next to the book's.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import student_edition as se  # scripts/, on sys.path through conftest.py
from conftest import CHROMIUM, timed

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "_build" / "launch"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHAPTERS = [p for p in se.toc_files(ROOT) if p.suffix == ".ipynb"]
HANDOUT = CHAPTERS[0].name if CHAPTERS else ""

LAB_SETTINGS = {
    # every cell in the DOM (JupyterLab 4 otherwise renders only the cells in view)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # no news, no update check (they would fetch from the internet)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
MYST = re.compile(r"\{[A-Za-z][\w:+.-]*\}`|\{glue|\{numref|\{ref\}|(`{3,}|~{3,})\s*\{|:::|^\s*\([^()\s]+\)=\s*$", re.M)
RAW_TEX = re.compile(r"\$\$|\\(begin|end|frac|hat|sigma|alpha|beta|mathcal|mathbf|operatorname|text|sum)\b")

# The notebook `path` is open (window.__notebook), all its cells are in the page, and rendered.
OPENED_JS = """([path, n]) => {
  const w = window.__notebook;
  if (!w || !w.context || w.context.path !== path || !w.content) { return false; }
  const nb = w.content.node;
  return nb.querySelectorAll('.jp-Cell').length >= n && !nb.querySelector('.jp-MarkdownCell:not(.jp-mod-rendered)');
}"""

# What the current notebook shows, collected in one pass.
PAGE_JS = r"""() => {
  const nb = window.__notebook.content.node;
  const cells = [...nb.querySelectorAll(':scope > .jp-Cell, .jp-WindowedPanel-viewport > .jp-Cell')];
  const md = [...nb.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown')];
  const prose = md.map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('code, pre, mjx-container, .MathJax').forEach(x => x.remove());
    return c.innerText;
  }).join('\n');
  const images = [...nb.querySelectorAll('img')];
  const folded = [...nb.querySelectorAll('.jp-MarkdownCell')]
    .filter(c => c.querySelector('.jp-collapseHeadingButton.jp-mod-collapsed'));
  return {
    cells: cells.length,
    unrendered: nb.querySelectorAll('.jp-MarkdownCell:not(.jp-mod-rendered)').length,
    math: nb.querySelectorAll('.jp-RenderedMarkdown mjx-container').length,
    prose,
    text: md.map(e => e.innerText).join('\n'),
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 60)),
    folded: folded.length,
    hiddenAfterFold: folded.filter(c => { const n = c.nextElementSibling; return n && n.offsetParent === null; }).length,
  };
}"""


@dataclass
class Lab:
    base_url: str
    token: str
    root: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return f"{self.base_url}lab/tree/{path}?token={self.token}&reset"


@dataclass
class Rendered:
    name: str
    source: nbformat.NotebookNode
    info: dict
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(book_build, student, tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed (apt-get install chromium): JupyterLab checks skipped")
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "root"
    (root / "launch").mkdir(parents=True)
    (root / "handout").mkdir()
    for chapter in CHAPTERS:
        shutil.copy(LAUNCH / chapter.relative_to(ROOT), root / "launch" / chapter.name)
    handout = se.NOTEBOOKS / HANDOUT
    assert handout.is_file(), f"no handout {handout}"
    shutil.copy(handout, root / "handout" / HANDOUT)
    for name, value in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_PREFER_ENV_PATH="1")
    port, token = _free_port(), secrets.token_hex(16)
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    log = (home / "server.log").open("w")
    with timed("JupyterLab: server start"):
        process = subprocess.Popen(
            [str(jupyter_lab), "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly",
             "--LabApp.expose_app_in_browser=True"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                log.close()
                pytest.fail(f"jupyter-lab exited:\n{(home / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    process.terminate()
                    pytest.fail(f"jupyter-lab did not answer:\n{(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.3)
    try:
        yield Lab(base, token, root, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def rendered(lab: Lab, browser) -> dict[str, Rendered]:
    """Open every launch notebook and the handout once; collect what the page shows.
    `browser` is the session's Chromium context (conftest.py): requests to any host but
    127.0.0.1 are blocked there."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    targets = [f"launch/{c.name}" for c in CHAPTERS] + [f"handout/{HANDOUT}"]
    found = {}
    with timed(f"JupyterLab: {len(targets)} notebooks opened in Chromium, screenshots"):
        requests: list[str] = []
        page = browser.new_page()
        try:
            page.set_viewport_size({"width": 1280, "height": 1400})
            page.on("request", lambda req: requests.append(req.url))
            errors: list[str] = []
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # One JupyterLab page; each notebook is opened in it with JupyterLab's own
            # "open" command, as a double click in the file browser does.
            page.goto(lab.url(""), wait_until="domcontentloaded")
            page.wait_for_function("() => !!window.jupyterapp", timeout=90_000)
            page.evaluate("async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }")
            for target in targets:
                source = nbformat.read(lab.root / target, as_version=4)
                if target != targets[0]:  # the first one also answers for loading JupyterLab
                    requests.clear()
                    errors.clear()
                page.evaluate("""async path => {
                    window.__notebook = await window.jupyterapp.commands.execute('docmanager:open', {path});
                    return true; }""", target)
                page.wait_for_function(OPENED_JS, arg=[target, len(source.cells)], timeout=90_000)
                # MathJax typesets asynchronously: wait until no raw display math is left
                page.wait_for_function(
                    r"""() => ![...window.__notebook.node.querySelectorAll('.jp-RenderedMarkdown')]
                         .some(e => /\$\$|\\begin\{/.test(e.innerText))""", timeout=60_000)
                page.wait_for_load_state("networkidle")
                info = page.evaluate(PAGE_JS)
                name = target.replace("/", "__").removesuffix(".ipynb")
                shots = [SCREENSHOTS / f"launch__{name}.png"]
                page.screenshot(path=str(shots[0]))
                figure = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img").first
                if figure.count():
                    figure.scroll_into_view_if_needed()
                    shots.append(SCREENSHOTS / f"launch__{name}__figure.png")
                    page.screenshot(path=str(shots[1]))
                found[target] = Rendered(target, source, info, list(requests), list(errors), shots)
                # the kernel the notebook started is not needed: shut it down, close the notebook.
                # Wait until it has started and answered its kernel_info request first: a
                # kernel disposed with that request pending logs "Disposed" as a console error
                # (seen on a busy machine, with the kernel slow to start).
                page.evaluate("""async () => { const w = window.__notebook;
                    try {
                      await w.sessionContext.ready;
                      const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
                      if (kernel) { await kernel.info; }
                      await w.sessionContext.shutdown();
                    } catch (e) { }
                    w.dispose(); return true; }""")
        finally:
            page.close()
    return found


def math_in(nb: nbformat.NotebookNode) -> int:
    """Formulas in the file's markdown: display blocks and inline $…$ spans."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"`[^`]*`", "", text)
    display = len(re.findall(r"\$\$.*?\$\$", text, re.S))
    inline = len(re.findall(r"(?<![\\$])\$(?!\$)[^$\n]+?(?<![\\$])\$", re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)))
    return display + inline


def images_in(nb: nbformat.NotebookNode) -> int:
    outputs = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if any(k.startswith("image/") for k in o.get("data", {})))
    attachments = sum(len(c.get("attachments", {})) for c in nb.cells if c.cell_type == "markdown")
    return outputs + attachments


def test_every_notebook_and_the_handout_opened(rendered) -> None:
    assert len(rendered) == len(CHAPTERS) + 1 and len(CHAPTERS) >= 5
    for r in rendered.values():
        assert r.info["cells"] == len(r.source.cells), f"{r.name}: {r.info['cells']} cells in the page, {len(r.source.cells)} in the file"
        assert r.info["unrendered"] == 0, f"{r.name}: markdown cells not rendered"
        assert all(p.stat().st_size > 10_000 for p in r.screenshots), f"{r.name}: empty screenshot"


def test_no_raw_myst_is_visible(rendered) -> None:
    problems = [f"{r.name}: {m.group(0)!r}" for r in rendered.values() for m in MYST.finditer(r.info["text"])]
    assert not problems, "raw MyST in the rendered notebooks:\n" + "\n".join(problems[:30])


def test_math_is_typeset(rendered) -> None:
    for r in rendered.values():
        expected = math_in(r.source)
        assert expected > 10, f"{r.name}: only {expected} formulas in the file: is the counter broken?"
        assert r.info["math"] >= expected, f"{r.name}: {r.info['math']} typeset formulas, {expected} in the file"
        raw = sorted({m.group(0) for m in RAW_TEX.finditer(r.info["prose"])})
        assert not raw, f"{r.name}: raw TeX visible: {raw}"


def test_images_load(rendered) -> None:
    for r in rendered.values():
        assert not r.info["broken"], f"{r.name}: images not loaded: {r.info['broken']}"
        assert r.info["images"] >= images_in(r.source), f"{r.name}: {r.info['images']} images shown, {images_in(r.source)} in the file"
    assert sum(r.info["images"] for n, r in rendered.items() if n.startswith("launch/")) >= 20


def test_figure_and_exercise_numbers_are_shown(rendered) -> None:
    for r in rendered.values():
        number = re.match(r"\d+", Path(r.name).name)
        assert number, r.name
        chapter = number.group(0).lstrip("0")
        assert re.search(rf"\bExercise {chapter}\.1\b", r.info["text"]), f"{r.name}: no 'Exercise {chapter}.1'"
        if r.name.startswith("launch/"):
            assert re.search(rf"\bFig\. {chapter}\.1\b", r.info["text"]), f"{r.name}: no 'Fig. {chapter}.1'"


def test_solutions_start_folded(rendered) -> None:
    for r in rendered.values():
        solutions = sum(1 for c in r.source.cells if c.cell_type == "markdown" and c.metadata.get("jp-MarkdownHeadingCollapsed"))
        if r.name.startswith("handout/"):
            assert solutions == 0 and "Solution to" not in r.info["text"], f"{r.name}: a solution in the handout"
            continue
        assert solutions >= 1, f"{r.name}: no folded solution in the file"
        assert r.info["folded"] == solutions and r.info["hiddenAfterFold"] == solutions, (
            f"{r.name}: {solutions} folded solutions in the file, {r.info['folded']} folded headings in the page, "
            f"{r.info['hiddenAfterFold']} with the next cell hidden")


def test_no_console_errors_and_nothing_leaves_the_machine(rendered) -> None:
    for r in rendered.values():
        external = [u for u in r.requests if urlparse(u).hostname not in ("127.0.0.1", None)
                    and urlparse(u).scheme not in ("data", "blob")]
        assert not external, f"{r.name}: requests to other hosts: {external[:5]}"
        assert not r.console_errors, f"{r.name}: console errors: {r.console_errors[:5]}"
