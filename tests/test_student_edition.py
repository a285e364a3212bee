"""The student edition (`make student`, scripts/student_edition.py) carries no solutions.

The edition is built once per session, the way `make student` builds it, into
_build/student/ (html/ and notebooks/). The leak check looks for *distinctive solution
lines* of at least 20 characters that occur nowhere else in the book, found two independent
ways: from the sources (solution code, solution prose split at markdown markup, as the
stripping code delimits the solutions) and from the full book's HTML (the text of every
solution as sphinx-exercise rendered it, whatever the stripping code thinks).

* positive control: both ways find the same solutions on every page, every solution has
  distinctive lines, and they are visible in the full book's page;
* the check: none of the fragments occurs anywhere under _build/student/html (pages,
  search index, the downloadable _sources/) or _build/student/notebooks;
* negative controls: the same checker run on unstripped notebooks reports every solution,
  and a solution whose markers the stripper does not recognise is reported as a leak;
* the exercises are all still there, in the HTML and in the notebooks.

The edition costs one more `jupyter-book build` (a few seconds: nothing is executed); its
duration is printed at the end of the run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import student_edition as se  # scripts/, on sys.path through conftest.py
from conftest import StudentEdition  # noqa: F401  (the `student` fixture lives in conftest.py)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def solutions() -> tuple[dict[str, list[se.Solution]], str]:
    """{page: its solutions} for the full book, and the book's text outside solutions."""
    return se.book_solutions(ROOT)


@pytest.fixture(scope="session")
def needles(solutions, built_html: Path) -> dict[tuple[str, int], dict[str, set[str]]]:
    """(page, n) -> the distinctive lines of the page's n-th solution, found two independent
    ways: "source", from the solution as the stripping code delimits it in the page's source,
    and "html", from the solution as sphinx-exercise rendered it in the full book."""
    by_page, elsewhere = solutions
    pages = [p.relative_to(ROOT).with_suffix(".html").as_posix() for p in se.toc_files(ROOT)]
    rendered, outside = se.html_solutions(built_html, pages)
    found: dict[tuple[str, int], dict[str, set[str]]] = {}
    for key, text in rendered.items():
        found.setdefault(key, {})["html"] = se.html_needles(text, outside)
    for page, solutions_of_page in by_page.items():
        for n, solution in enumerate(solutions_of_page, start=1):
            key = (Path(page).with_suffix(".html").as_posix(), n)
            found.setdefault(key, {})["source"] = se.needles(solution, elsewhere)
    return found


def all_needles(needles) -> set[str]:
    return set().union(*(ways.get("html", set()) | ways.get("source", set()) for ways in needles.values()))


def exercises_of(page: Path) -> list[str]:
    if page.suffix == ".ipynb":
        nb = nbformat.read(page, as_version=4)
        return [label for c in nb.cells if c.cell_type == "markdown" for label in se.exercise_labels(c.source)]
    return se.exercise_labels(page.read_text(encoding="utf-8"))


def html_page(html: Path, page: str) -> Path:
    return html / Path(page).with_suffix(".html")


# --- the build ---------------------------------------------------------------------------

def test_student_edition_builds_without_warnings(student: StudentEdition) -> None:
    assert student.returncode == 0 and not student.warnings, (
        "jupyter-book build _build/student/src -W failed or warned (a glue value or a reference "
        "defined only inside a solution?):\n" + "\n".join(student.warnings or student.log.splitlines()[-40:])
    )
    assert (se.HTML / "index.html").is_file() and (se.HTML / "book" / "intro.html").is_file()


def test_a_handout_for_every_notebook_chapter(student: StudentEdition) -> None:
    chapters = [p.name for p in se.toc_files(ROOT) if p.suffix == ".ipynb"]
    assert sorted(p.name for p in student.notebooks) == sorted(chapters)
    for path in student.notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name}: outputs not cleared"


def test_student_pages_download_stripped_sources_and_launch_nothing(student: StudentEdition) -> None:
    """The download button serves the stripped source; there are no Binder/Colab buttons,
    which would open the repository's notebook, solutions included."""
    problems = []
    for page in se.toc_files(ROOT):
        rel = page.relative_to(ROOT).as_posix()
        site = html_page(se.HTML, rel).read_text(encoding="utf-8")
        if "mybinder.org" in site or "colab.research.google.com" in site:
            problems.append(f"{rel}: has a launch button")
        if f"_sources/{rel}" not in site or not (se.HTML / "_sources" / rel).is_file():
            problems.append(f"{rel}: no download of _sources/{rel}")
    assert not problems, "\n".join(problems)


def test_handouts_are_launch_notebooks_without_solutions(student) -> None:
    assert student.notebooks
    for path in student.notebooks:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        leftovers = re.findall(r"\{[A-Za-z][\w:+.-]*\}`|```\s*\{|:::|^\s*\([^()\s]+\)=\s*$", text, re.M)
        assert not leftovers, f"{path.name}: MyST syntax left: {leftovers[:10]}"
        assert re.search(r"#+ Exercise \d+\.1\b", text), f"{path.name}: no numbered exercise"
        assert "Solution to" not in text, f"{path.name}: a solution heading"
        assert nb.metadata.get("launch_notebook"), f"{path.name} is not a launch notebook"


# --- no solution survives ----------------------------------------------------------------

def test_every_solution_is_visible_to_the_checker(needles, built_html: Path) -> None:
    """Positive control. The stripping code and sphinx-exercise agree on where the solutions
    are (same number on every page); every solution has distinctive lines in its rendered
    HTML, and at least one of its source lines is found in the full book's page."""
    if not needles:
        pytest.skip("no solutions in the book yet")
    problems = []
    for (page, n), ways in sorted(needles.items()):
        if set(ways) != {"html", "source"}:
            problems.append(f"{page} solution {n}: only in the {'/'.join(ways)} (the stripper and "
                            "sphinx-exercise disagree about the solutions of this page)")
            continue
        if not ways["html"]:
            problems.append(f"{page} solution {n}: no distinctive line in its rendered text")
        full_text = se.searchable_text(built_html / page)
        if not any(f in full_text for f in ways["source"]):
            problems.append(f"{page} solution {n}: none of its source lines is visible in the page: "
                            f"{sorted(ways['source'])[:3]}")
    assert not problems, "solutions the checker cannot see:\n" + "\n".join(problems)


def test_no_solution_text_in_the_student_edition(student: StudentEdition, needles) -> None:
    found = se.leaks(all_needles(needles), se.HTML, se.NOTEBOOKS)
    assert not found, f"{len(found)} solution lines in the student edition:\n" + "\n".join(
        f"{Path(path).relative_to(ROOT)}: {needle!r}" for path, needle in found[:30])
    # No solution admonition on a page, no solution directive in a downloadable source or a
    # handout (examples of the syntax in code blocks, as on the instructors' page, are fine).
    left = []
    for path in [*se.output_files(se.HTML), *student.notebooks]:
        if path.suffix == ".html" and re.search(r'<div class="solution\b', path.read_text(encoding="utf-8")):
            left.append(f"{path.relative_to(ROOT)}: a solution admonition")
        elif path.suffix in (".ipynb", ".md") and se.solutions_in(path):
            left.append(f"{path.relative_to(ROOT)}: a solution directive")
    assert not left, "\n".join(left)


def test_the_checker_reports_unstripped_notebooks(needles, tmp_path: Path) -> None:
    """Negative control: hand out the pages WITHOUT stripping them; the checker must report
    every one of their solutions."""
    if not needles:
        pytest.skip("no solutions in the book yet")
    for page in se.toc_files(ROOT):
        if page.suffix == ".ipynb":
            nbformat.write(se.handout(nbformat.read(page, as_version=4)), tmp_path / page.name)
        else:
            (tmp_path / page.name).write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    found = {needle for _, needle in se.leaks(all_needles(needles), tmp_path)}
    missed = [key for key, ways in needles.items()
              if not (ways.get("html", set()) | ways.get("source", set())) & found]
    assert not missed, f"the checker did not notice these unstripped solutions: {missed}"


def test_a_solution_the_stripper_misses_is_caught(tmp_path: Path) -> None:
    """Negative control: a solution whose markers are misspelled is not stripped, and the
    checker reports it; a half-marked solution is an error, not a silent pass."""
    def chapter(start: str, end: str) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_markdown_cell("```{exercise}\n:label: demo-ex-1\n\nCompute the answer.\n```"),
            nbformat.v4.new_markdown_cell(f"```{{{start}}} demo-ex-1\n:class: dropdown\n```"),
            nbformat.v4.new_code_cell("secret_answer = sum(range(4242)) // 17  # the solution"),
            nbformat.v4.new_markdown_cell(f"```{{{end}}}\n```"),
        ]
        return nb

    good, removed = se.strip_notebook(chapter("solution-start", "solution-end"))
    assert len(removed) == 1 and len(good.cells) == 1
    fragments = se.needles(removed[0], elsewhere="")
    assert "secret_answer = sum(range(4242)) // 17  # the solution".replace("  ", " ") in fragments

    broken, removed = se.strip_notebook(chapter("solution_start", "solution_end"))  # typo
    assert not removed and len(broken.cells) == 4
    nbformat.write(se.handout(broken), tmp_path / "demo.ipynb")
    assert se.leaks(fragments, tmp_path), "the checker missed an unstripped solution"

    with pytest.raises(ValueError, match="no solution-end"):
        se.strip_notebook(chapter("solution-start", "solution_end"))
    with pytest.raises(ValueError, match="without a solution-start"):
        se.strip_notebook(chapter("solution_start", "solution-end"))


# --- the exercises stay ------------------------------------------------------------------

def test_every_exercise_is_in_the_student_edition(student: StudentEdition) -> None:
    missing = []
    for page in se.toc_files(ROOT):
        rel = page.relative_to(ROOT).as_posix()
        labels = exercises_of(page)
        site = html_page(se.HTML, rel).read_text(encoding="utf-8")
        missing += [f"{rel}: {label} (html)" for label in labels
                    if not re.search(rf'<div class="exercise[^"]*" id="{re.escape(label)}"', site)]
        if page.suffix == ".ipynb":
            handed_out = handout_exercises(se.NOTEBOOKS / page.name)
            missing += [f"{rel}: {label} (notebook)" for label in labels if label not in handed_out]
            numbers = re.findall(r'<span class="caption-number">(Exercise [\d.]+)', site)
            missing += [f"{rel}: {n} (notebook heading)" for n in numbers if n not in handed_out.values()]
    assert not missing, "exercises missing from the student edition:\n" + "\n".join(missing)


def handout_exercises(path: Path) -> dict[str, str]:
    """{label: "Exercise 2.1"} of a handout (a launch notebook: an anchor with the exercise's
    label, then a heading with its number)."""
    found = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for m in re.finditer(r'<a id="([^"]+)"></a>\s*#+ (Exercise[^\n]*)', cell.source):
                found[m[1]] = m[2].strip()
    return found


# --- stripping, unit by unit -------------------------------------------------------------

MD_PAGE = """# Page

```{exercise}
:label: page-ex-1

Do it.
```

```{solution} page-ex-1
:class: dropdown

The answer is forty-two, obviously.
```

:::{solution} page-ex-1
Colon-fenced solution text.
:::

````{admonition} Nested
```{solution} page-ex-1
A solution inside an admonition.
```
Admonition text stays.
````

````markdown
```{solution} page-ex-1
An example in a code block stays: it is not a solution.
```
````

```{solution-start} page-ex-1
:class: dropdown
```
Gated solution prose.
```{code-cell} python
gated = "solution code"
```
```{solution-end}
```

See the solution above. The end.
"""


def test_strip_markdown_page() -> None:
    text, removed = se.strip_markdown(MD_PAGE)
    assert len(removed) == 4
    for gone in ("forty-two", "Colon-fenced", "inside an admonition", "Gated solution prose", "gated ="):
        assert gone not in text
    for kept in ("Do it.", "Admonition text stays.", "An example in a code block stays",
                 "See the solution above. The end.", "```{exercise}"):
        assert kept in text
    assert se.exercise_labels(text) == ["page-ex-1"]


def test_strip_notebook_keeps_text_around_the_fences() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Exercises\n\n```{exercise}\n:label: x-ex-1\nDo.\n```\n\n"
                                      "```{solution-start} x-ex-1\n:class: dropdown\n```"),
        nbformat.v4.new_code_cell("answer = 1"),
        nbformat.v4.new_markdown_cell("Solution prose.\n```{solution-end}\n```\nAfter the solution."),
        nbformat.v4.new_code_cell("kept = 2"),
    ]
    out, removed = se.strip_notebook(nb)
    assert [c.source for c in out.cells] == [
        "## Exercises\n\n```{exercise}\n:label: x-ex-1\nDo.\n```", "After the solution.", "kept = 2"]
    assert removed[0].label == "x-ex-1" and "answer = 1" in removed[0].text
    assert len(nb.cells) == 4  # the input is not modified


# --- handouts run without the solutions ----------------------------------------------------

def _names(source: str, ctx: type) -> set[str]:
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}
    if ctx is ast.Store:
        names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    return names


def test_handouts_do_not_need_names_defined_in_solutions() -> None:
    """Static check: no code cell a student keeps uses a variable that only a (removed)
    solution defines, so the handout runs top to bottom."""
    problems = []
    for page in se.toc_files(ROOT):
        if page.suffix != ".ipynb":
            continue
        nb = nbformat.read(page, as_version=4)
        stripped, removed = se.strip_notebook(nb, page.name)
        kept = [c.source for c in stripped.cells if c.cell_type == "code"]
        defined_kept = set().union(*(_names(s, ast.Store) for s in kept)) if kept else set()
        defined_in_solutions = set().union(*(_names(c, ast.Store) for s in removed for c in s.code)) if removed else set()
        only_in_solutions = defined_in_solutions - defined_kept
        for source in kept:
            used = _names(source, ast.Load) & only_in_solutions
            if used:
                problems.append(f"{page.name}: {sorted(used)} in: {source.splitlines()[0]!r}")
    assert not problems, "handout cells use names defined only in solutions:\n" + "\n".join(problems)
