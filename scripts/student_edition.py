#!/usr/bin/env python3
"""Build the student edition of the book: every exercise kept, every solution removed.

    make student          # = .venv/bin/python scripts/student_edition.py

writes

    _build/student/src/        staging copy of the book sources, solutions stripped
    _build/student/html/       the student site (open _build/student/html/index.html)
    _build/student/notebooks/  one .ipynb per notebook chapter of _toc.yml: its launch
                               notebook (plain Markdown, as the book reads), solutions
                               removed and outputs cleared: the files to hand out

How (each step is a function that tests/test_student_edition.py also calls):

1. ``stage()`` copies the book sources (the repository without .git, .venv, node_modules,
   _build and caches, plus the offline MathJax copy _build/mathjax that _config.yml's
   html_extra_path names) to _build/student/src/. _toc.yml and _config.yml are copied, so
   only_build_toc_files, exclude_patterns and the _ext/ extension behave as in the full
   book; the one change to _config.yml is that the Binder and Colab launch buttons are off,
   because they would open the repository's notebooks, solutions included.
2. ``strip_tree()`` removes the solutions from every staged page (.ipynb and .md) BEFORE
   Sphinx reads them:
     * gated solutions: from the markdown fence ```{solution-start} <label> to the fence
       ```{solution-end}, inclusive. In a notebook the fences sit in markdown cells and the
       cells between them (solution code and its outputs, solution prose) are removed with
       them; text before the start fence or after the end fence in the same cell is kept.
     * ``{solution}`` directives (``` or ::: fences) in markdown, with their whole body.
   Fences inside code blocks are examples, not solutions, and are left alone; solutions
   nested in other directives (an admonition, say) are found. Prose such as "see the
   solution" is left alone. (sphinx-exercise's own ``hide_solutions`` option is not used:
   it fails on gated solutions and would not touch the downloadable sources.)
3. ``build()`` runs ``jupyter-book build _build/student/src --all -W -n --keep-going`` (the
   same command and configuration as ``make book``) and moves the site to
   _build/student/html. Its download buttons and _sources/ serve the stripped pages, so a
   downloaded .ipynb or .md carries no solutions either.
4. ``write_handouts()`` writes the student notebooks: the launch notebooks that the student
   build wrote (_ext/launch_notebooks.py: plain Jupyter Markdown with the glue values, figure
   and exercise numbers of the book; see README "Launch notebooks") from the stripped
   sources, with outputs, execution counts and timing metadata cleared.
5. ``leaks()`` scans both outputs for every solution's distinctive lines. They are taken from
   the sources and, independently of the stripping code, from the full book's HTML
   (``html_solutions()``: the solutions as sphinx-exercise rendered them; `make student`
   runs `make book` first). The script fails if any line is found, or if the full book
   shows a different number of solutions than the stripper removed.

A malformed solution (a solution-start without its solution-end, or the reverse) is an
error, never silently passed through or allowed to swallow the rest of the chapter.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "student"
SRC = OUT / "src"
HTML = OUT / "html"
NOTEBOOKS = OUT / "notebooks"
MATHJAX = ROOT / "_build" / "mathjax"  # prepared by `make mathjax`; see _config.yml
FULL_HTML = ROOT / "_build" / "html"  # the full book (`make book`), for the leak check

# Top-level entries never copied to the staging folder (not book sources, or very large).
SKIP_TOP = {".git", ".venv", "node_modules", "_build"}
SKIP_ANY = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}

# ---------------------------------------------------------------------------------------
# Finding solutions in MyST markdown
# ---------------------------------------------------------------------------------------

# An opening code/directive fence (CommonMark: at most 3 spaces of indentation).
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})(?P<info>[^\n]*)$")
DIRECTIVE = re.compile(r"^\s*\{(?P<name>[^}\s]+)\}(?P<arg>.*)$")
# Directives whose body is literal text (code, math), not markdown: skipped, not searched.
LITERAL_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode", "literalinclude",
                      "math", "raw", "eval-rst", "mermaid"}
SOLUTION_KINDS = {"solution": "solution", "solution-start": "start", "solution-end": "end"}


def _closes(line: str, char: str, length: int) -> bool:
    stripped = line.strip()
    return len(line) - len(line.lstrip(" ")) <= 3 and len(stripped) >= length and set(stripped) == {char}


def _closing_line(lines: list[str], start: int, char: str, length: int) -> int | None:
    for j in range(start, len(lines)):
        if _closes(lines[j], char, length):
            return j
    return None


def _scan(lines: list[str], kinds: dict[str, str] = SOLUTION_KINDS) -> list[tuple[str, int, int, str]]:
    """The directives named in `kinds` in a markdown text, outside code blocks:
    (kind, first line, last line, argument). With the default `kinds`, kind is "solution"
    (a whole {solution} directive), "start" or "end" (a gated fence)."""
    found = []
    containers: list[tuple[str, int]] = []  # open non-literal directive fences
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r\n")
        if containers and _closes(line, *containers[-1]):
            containers.pop()
            i += 1
            continue
        m = FENCE.match(line)
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):  # not a fence (inline code)
            i += 1
            continue
        char, length = m["fence"][0], len(m["fence"])
        directive = DIRECTIVE.match(m["info"])
        name = directive["name"] if directive else None
        end = _closing_line([ln.rstrip("\r\n") for ln in lines], i + 1, char, length)
        if name in kinds:
            if end is None:
                raise ValueError(f"line {i + 1}: {{{name}}} fence is never closed")
            found.append((kinds[name], i, end, directive["arg"].strip()))
            i = end + 1
        elif name is None or name in LITERAL_DIRECTIVES:  # code: its content is not markdown
            i = len(lines) if end is None else end + 1
        else:  # a container directive (admonition, exercise, ...): look inside
            containers.append((char, length))
            i += 1
    return found


def _pieces(text: str) -> list[tuple[str, str, str]]:
    """Split markdown into (kind, text, label) pieces: kind "text" for ordinary markdown,
    otherwise one of the solution kinds of _scan()."""
    lines = text.splitlines(keepends=True)
    pieces, pos = [], 0
    for kind, first, last, arg in _scan(lines):
        pieces.append(("text", "".join(lines[pos:first]), ""))
        pieces.append((kind, "".join(lines[first:last + 1]), arg))
        pos = last + 1
    pieces.append(("text", "".join(lines[pos:]), ""))
    return pieces


def _line_end(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


@dataclass
class Solution:
    label: str  # the exercise it solves (gated) or the directive's argument
    text: str  # everything removed: fences, markdown, solution code
    code: list[str] = field(default_factory=list)  # the removed code cells alone


class _Stripper:
    """Walks the markdown and code of one page in order, dropping solutions."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.open: Solution | None = None  # a gated solution whose end has not been seen
        self.removed: list[Solution] = []

    def markdown(self, text: str) -> str:
        kept = []
        for kind, piece, label in _pieces(text):
            if kind == "solution":
                if self.open:
                    self.open.text += _line_end(piece)
                else:
                    self.removed.append(Solution(label, _line_end(piece)))
            elif kind == "start":
                if self.open:
                    raise ValueError(f"{self.where}: solution-start {label!r} inside the open "
                                     f"solution {self.open.label!r} (missing solution-end?)")
                self.open = Solution(label, _line_end(piece))
            elif kind == "end":
                if not self.open:
                    raise ValueError(f"{self.where}: solution-end without a solution-start")
                self.open.text += _line_end(piece)
                self.removed.append(self.open)
                self.open = None
            elif self.open:
                self.open.text += _line_end(piece)
            else:
                kept.append(piece)
        return "".join(kept)

    def code(self, source: str) -> bool:
        """True if a code cell is kept (it is not inside a gated solution)."""
        if self.open:
            self.open.text += _line_end(source)
            self.open.code.append(source)
            return False
        return True

    def finish(self) -> list[Solution]:
        if self.open:
            raise ValueError(f"{self.where}: solution-start {self.open.label!r} has no solution-end")
        return self.removed


def strip_markdown(text: str, where: str = "<markdown>") -> tuple[str, list[Solution]]:
    """A MyST markdown page (or MyST text notebook) without its solutions, and what was removed."""
    stripper = _Stripper(where)
    kept = stripper.markdown(text)
    return kept, stripper.finish()


def strip_notebook(nb: nbformat.NotebookNode, where: str = "<notebook>") -> tuple[nbformat.NotebookNode, list[Solution]]:
    """A copy of the notebook without its solutions, and what was removed."""
    stripper = _Stripper(where)
    out = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy
    cells = []
    for cell in out.cells:
        if cell.cell_type == "markdown":
            kept = stripper.markdown(cell.source)
            if kept == cell.source:
                cells.append(cell)
            elif kept.strip():
                cell.source = kept.strip("\n")
                cells.append(cell)
        elif cell.cell_type == "code":
            if stripper.code(cell.source):
                cells.append(cell)
        elif not stripper.open:
            cells.append(cell)
    out.cells = cells
    return out, stripper.finish()


def strip_file(path: Path) -> list[Solution]:
    """Strip the solutions of one .ipynb or .md file in place; returns what was removed."""
    where = str(path)
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        stripped, removed = strip_notebook(nb, where)
        if removed:
            nbformat.write(stripped, path)
    else:
        text = path.read_text(encoding="utf-8")
        stripped, removed = strip_markdown(text, where)
        if removed:
            path.write_text(stripped, encoding="utf-8")
    return removed


def page_files(root: Path) -> list[Path]:
    """Every .ipynb and .md file under root (outside build, cache and hidden folders)."""
    return sorted(
        p for p in [*root.rglob("*.ipynb"), *root.rglob("*.md")]
        if not ({"_build", "node_modules", *SKIP_ANY} & set(p.relative_to(root).parts))
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def solutions_in(path: Path) -> list[Solution]:
    """The solutions of a page, read without changing it."""
    if path.suffix == ".ipynb":
        return strip_notebook(nbformat.read(path, as_version=4), str(path))[1]
    return strip_markdown(path.read_text(encoding="utf-8"), str(path))[1]


def exercises(text: str) -> list[tuple[str, dict[str, str]]]:
    """(label, options) of the {exercise} (and gated {exercise-start}) directives in
    markdown text; examples inside code blocks do not count."""
    lines = text.splitlines()
    found = []
    for _, first, last, _ in _scan(lines, {"exercise": "exercise", "exercise-start": "exercise"}):
        options = {}
        for option in lines[first + 1:last]:
            m = re.match(r"\s*:([\w-]+):\s*(.*)$", option)
            if not m:
                break
            options[m[1]] = m[2].strip()
        found.append((options.get("label", ""), options))
    return found


def exercise_labels(text: str) -> list[str]:
    """Labels of the exercises in markdown text (see exercises())."""
    return [label for label, _ in exercises(text) if label]


# ---------------------------------------------------------------------------------------
# Staging, building, handouts
# ---------------------------------------------------------------------------------------

def stage(root: Path = ROOT, src: Path = SRC) -> Path:
    """Copy the book sources (and the offline MathJax copy) to a fresh staging folder."""
    if not (MATHJAX / "_static" / "mathjax" / "tex-mml-chtml.js").is_file():
        sys.exit("_build/mathjax is missing: run `make student`, which prepares it first")
    shutil.rmtree(src, ignore_errors=True)

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in SKIP_ANY or n.endswith(".egg-info")}
        if Path(directory).resolve() == root.resolve():
            skip |= {n for n in names if n in SKIP_TOP}
        return skip

    shutil.copytree(root, src, ignore=ignore)
    # html_extra_path in _config.yml names _build/mathjax relative to the book's root.
    shutil.copytree(MATHJAX, src / "_build" / "mathjax")
    # The one change to the configuration: no Binder/Colab launch buttons. They open the
    # notebook in the repository, with its solutions; the download button (the stripped
    # _sources/ copy) and the handouts are the student's notebooks.
    config_path = src / "_config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config.setdefault("launch_buttons", {}).update(binderhub_url="", colab_url="", jupyterhub_url="")
    config_path.write_text("# Student edition: written by scripts/student_edition.py from ../../../_config.yml\n"
                           + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return src


def strip_tree(src: Path = SRC) -> dict[str, list[Solution]]:
    """Strip every page of the staging folder in place; {relative path: removed solutions}."""
    removed = {}
    for path in page_files(src):
        found = strip_file(path)
        if found:
            removed[path.relative_to(src).as_posix()] = found
    return removed


def build(src: Path = SRC, html_out: Path = HTML) -> tuple[int, str]:
    """`jupyter-book build <src> --all -W -n --keep-going`; the site is moved to html_out.
    Returns the return code and the build log (colour codes removed)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jupyter_book), "build", str(src), "--all", "-W", "-n", "--keep-going"],
        cwd=src, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=1800,
    )
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    shutil.rmtree(html_out, ignore_errors=True)
    if (src / "_build" / "html").is_dir():
        shutil.move(str(src / "_build" / "html"), str(html_out))
    return proc.returncode, log


def toc_files(root: Path = ROOT) -> list[Path]:
    """The pages listed in _toc.yml (root first), with their file extension resolved."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    names.append(node[key])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    paths = []
    for name in names:
        if Path(name).suffix in (".ipynb", ".md"):
            candidates = [root / name]
        else:
            candidates = [root / f"{name}{ext}" for ext in (".ipynb", ".md")]
        paths.extend([p for p in candidates if p.is_file()][:1])
    return list(dict.fromkeys(paths))


def handout(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook as handed to students: outputs, execution counts and timings cleared."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def launch_notebook(src: Path, page: Path) -> Path:
    """The launch notebook that the build of `src` wrote for one of its pages
    (_ext/launch_notebooks.py writes them to <src>/_build/launch/, next to the HTML)."""
    return src / "_build" / "launch" / page.relative_to(src)


def write_handouts(src: Path = SRC, out: Path = NOTEBOOKS) -> list[Path]:
    """Student notebooks for every notebook chapter of the (stripped) staging folder: the
    launch notebooks of the student build (plain Jupyter Markdown, glue values and exercise
    numbers filled in, solutions already removed from the sources), outputs cleared."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    written = []
    for page in toc_files(src):
        if page.suffix != ".ipynb":
            continue
        launch = launch_notebook(src, page)
        if not launch.is_file():
            raise FileNotFoundError(f"{launch}: the student build wrote no launch notebook for {page.name} "
                                    "(is launch_notebooks in _config.yml's local_extensions?)")
        nb = nbformat.read(launch, as_version=4)
        _, removed = strip_notebook(nb, str(launch))  # the sources were stripped: a no-op check
        assert not removed, f"{launch} still has solutions"
        target = out / page.name
        nbformat.write(handout(nb), target)
        written.append(target)
    return written


# ---------------------------------------------------------------------------------------
# Leak check
# ---------------------------------------------------------------------------------------

MIN_NEEDLE = 20  # characters: shorter fragments ("print(fit)") are not distinctive
MARKUP = re.compile(r"[`$*{}\[\]|<>]")  # markdown/MyST markup: split prose at it
TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                            "\u2013": "--", "\u2014": "---", "\u2026": "...", "\u00a0": " "})


def normalise(text: str) -> str:
    """Whitespace collapsed and Sphinx's smart quotes and dashes undone."""
    return " ".join(text.translate(TYPOGRAPHY).split())


def needles(solution: Solution, elsewhere: str) -> set[str]:
    """Distinctive fragments of a solution: lines (prose split at markup) of at least
    MIN_NEEDLE characters that occur nowhere in the book outside solutions (`elsewhere`,
    normalised). Fences and directive options are not distinctive."""
    found = set()
    for line in solution.text.splitlines():
        if FENCE.match(line) or line.strip().startswith(":"):
            continue
        for fragment in MARKUP.split(line):
            fragment = normalise(fragment).strip(" .,;:()")
            if len(fragment) >= MIN_NEEDLE and fragment not in elsewhere:
                found.add(fragment)
    return found


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def searchable_text(path: Path) -> str:
    """What a reader can see in a file, normalised: an HTML page's text (and, to catch
    attributes, its unescaped markup); a notebook's cell sources and text outputs; any other
    text file as it is. Binary files give ""."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""
    if path.suffix == ".html":
        parser = _Text()
        parser.feed(raw)
        return normalise("".join(parser.parts)) + "\n" + normalise(html.unescape(raw))
    if path.suffix == ".ipynb":
        try:
            nb = nbformat.reads(raw, as_version=4)
        except Exception:  # not a notebook after all: treat as text
            return normalise(raw)
        parts = []
        for cell in nb.cells:
            parts.append(cell.source)
            for output in cell.get("outputs", []):
                parts.append(output.get("text", "") if isinstance(output.get("text"), str) else "")
                for value in output.get("data", {}).values():
                    if isinstance(value, str) and not value.startswith("iVBOR"):
                        parts.append(value)
        return normalise("\n".join(parts)) + "\n" + normalise(raw)
    return normalise(raw)


def output_files(*folders: Path) -> list[Path]:
    """Every file under the folders, except the vendored MathJax copy (identical in both
    editions, and 24 MB of JavaScript)."""
    files = []
    for folder in folders:
        files.extend(p for p in folder.rglob("*")
                     if p.is_file() and "mathjax" not in p.relative_to(folder).parts)
    return sorted(files)


def leaks(needle_set: set[str], *folders: Path) -> list[tuple[str, str]]:
    """(file, needle) for every distinctive solution fragment found in the folders."""
    found = []
    for path in output_files(*folders):
        text = searchable_text(path)
        found.extend((str(path), n) for n in sorted(needle_set) if n in text)
    return found


class _SolutionDivs(HTMLParser):
    """Splits a page's text into the text of each solution as sphinx-exercise rendered it
    (<div class="solution ...">, nested divs included) and the text outside solutions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.solutions: list[list[str]] = []
        self.outside: list[str] = []
        self._depth = 0  # div nesting inside the current solution; 0 = not in a solution

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "div":
            return
        if self._depth:
            self._depth += 1
        elif "solution" in (dict(attrs).get("class") or "").split():
            self._depth = 1
            self.solutions.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        (self.solutions[-1] if self._depth else self.outside).append(data)


def html_solutions(html: Path, pages: list[str]) -> tuple[dict[tuple[str, int], str], str]:
    """The solutions of a built (full) book, read from its HTML, independently of the
    stripping code: {(page, n): text of the page's n-th solution}, and the normalised text of
    all pages outside solutions."""
    solutions, outside = {}, []
    for page in pages:
        parser = _SolutionDivs()
        parser.feed((html / page).read_text(encoding="utf-8"))
        outside.append("".join(parser.outside))
        for n, parts in enumerate(parser.solutions, start=1):
            solutions[(page, n)] = "".join(parts)
    return solutions, normalise("\n".join(outside))


def html_needles(text: str, outside: str) -> set[str]:
    """Distinctive lines of a solution's rendered text (code lines, lines of prose, outputs):
    at least MIN_NEEDLE characters, found nowhere in the book outside solutions."""
    found = set()
    for line in text.splitlines():
        line = normalise(line).strip(" .,;:()")
        if len(line) >= MIN_NEEDLE and line not in outside:
            found.add(line)
    return found


def book_solutions(root: Path = ROOT) -> tuple[dict[str, list[Solution]], str]:
    """The solutions of every page of the book, and the book's text outside them."""
    solutions, elsewhere = {}, []
    for page in toc_files(root):
        rel = page.relative_to(root).as_posix()
        if page.suffix == ".ipynb":
            nb = nbformat.read(page, as_version=4)
            stripped, removed = strip_notebook(nb, rel)
            elsewhere.extend(c.source for c in stripped.cells)
        else:
            stripped_text, removed = strip_markdown(page.read_text(encoding="utf-8"), rel)
            elsewhere.append(stripped_text)
        if removed:
            solutions[rel] = removed
    return solutions, normalise("\n".join(elsewhere))


def main() -> int:
    t0 = time.monotonic()
    solutions, elsewhere = book_solutions()
    src = stage()
    removed = strip_tree(src)
    for rel, found in removed.items():
        print(f"  {rel}: removed {len(found)} solution(s)")
    code, log = build(src)
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    if code != 0 or warnings:
        print("\n".join(warnings or log.splitlines()[-40:]))
        print("student edition: the build failed or warned (see above)", file=sys.stderr)
        return 1
    handouts = write_handouts(src)
    # What to look for: the solutions' distinctive lines, from the sources and, independently
    # of the stripping code, from the full book's HTML (`make student` builds it first).
    all_needles = set().union(*(needles(s, elsewhere) for found in solutions.values() for s in found))
    if (FULL_HTML / "index.html").is_file():
        pages = [p.relative_to(ROOT).with_suffix(".html").as_posix() for p in toc_files()]
        rendered, outside = html_solutions(FULL_HTML, pages)
        all_needles |= set().union(*(html_needles(text, outside) for text in rendered.values()))
        if len(rendered) != sum(map(len, solutions.values())):
            print(f"student edition: the full book shows {len(rendered)} solutions, the stripper "
                  f"found {sum(map(len, solutions.values()))} (is _build/html up to date?)", file=sys.stderr)
            return 1
    else:
        print("note: _build/html not built: checking with the solutions found in the sources only")
    leaked = leaks(all_needles, HTML, NOTEBOOKS)
    if leaked:
        for path, needle in leaked[:40]:
            print(f"LEAK {Path(path).relative_to(ROOT)}: {needle!r}")
        print(f"student edition: {len(leaked)} solution fragment(s) leaked", file=sys.stderr)
        return 1
    n_solutions = sum(map(len, solutions.values()))
    print(f"Student edition: {n_solutions} solutions removed, none of {len(all_needles)} "
          f"distinctive solution lines found in the outputs ({time.monotonic() - t0:.1f} s).")
    print(f"  site:      {HTML.relative_to(ROOT)}/index.html")
    print(f"  notebooks: {NOTEBOOKS.relative_to(ROOT)}/ ({', '.join(p.name for p in handouts) or 'none yet'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
