"""Launch notebooks (_ext/launch_notebooks.py): the chapters as they are opened on Binder and
Colab, downloaded, and handed out, read like the book.

Checked on the launch notebooks that this session's book build wrote (`_build/launch/`), on
the handouts of the student edition (`_build/student/notebooks/`) and on a fixture chapter:

* no MyST syntax survives: no role (`{glue`, `{numref`, `{ref`, ...), no directive fence
  (```` ```{ ````, `:::`), no `(label)=` target;
* every number the HTML book shows in a chapter's prose (paragraphs, lists, headings,
  admonitions, exercises, captions, everything but code and outputs) is in the chapter's
  launch notebook, as often as on the page; the unconverted chapter fails the same check
  (negative control: its glued numbers are missing);
* every figure and exercise number of a page ("Fig. 2.3", "Exercise 2.1") is in the notebook,
  and every link into the published book names a page and an anchor that exist in the build;
* the code cells are the chapter's, in order, with the chapter's outputs (glue records
  aside), the first one the Colab setup cell; the download button serves the launch notebook;
* the converter, unit by unit, on a fixture chapter with every construct it handles.

JupyterLab renders them: tests/test_launch_jupyterlab.py. They run with requirements.txt
alone and reproduce the stored outputs: tests/test_runtime_env.py.
"""

from __future__ import annotations

import base64
import re
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import student_edition as se  # scripts/, on sys.path through conftest.py
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
import launch_notebooks as ln  # noqa: E402  (_ext/, the Sphinx extension)

LAUNCH = ROOT / "_build" / "launch"
CHAPTERS = [p for p in se.toc_files(ROOT) if p.suffix == ".ipynb"]
MYST_LEFTOVERS = {
    "a role": re.compile(r"\{[A-Za-z][\w:+.-]*\}`"),
    "a glue role": re.compile(r"\{glue"),
    "a numref role": re.compile(r"\{numref"),
    "a ref role": re.compile(r"\{ref"),
    "a directive fence": re.compile(r"(`{3,}|~{3,})\s*\{"),
    "a colon fence": re.compile(r":::"),
    "a (label)= target": re.compile(r"^\s*\([^()\s]+\)=\s*$", re.M),
}
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def launch_of(chapter: Path) -> Path:
    return LAUNCH / chapter.relative_to(ROOT)


@pytest.fixture(scope="session")
def launch(book_build) -> dict[Path, nbformat.NotebookNode]:
    """{chapter: its launch notebook}, as this session's book build wrote them."""
    missing = [str(launch_of(c).relative_to(ROOT)) for c in CHAPTERS if not launch_of(c).is_file()]
    assert not missing, f"the build wrote no launch notebook for: {missing}"
    return {c: nbformat.read(launch_of(c), as_version=4) for c in CHAPTERS}


def markdown_text(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def myst_leftovers(text: str) -> list[str]:
    return [f"{what}: {m.group(0)!r} in …{text[max(0, m.start() - 40):m.end() + 40]!r}…"
            for what, pattern in MYST_LEFTOVERS.items() for m in pattern.finditer(text)]


def base_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return ln.published_base_url(config["repository"]["url"], (config.get("html") or {}).get("baseurl", ""))


# --- what the book shows ---------------------------------------------------------------------

class _Prose(HTMLParser):
    """The text of a page's article, without code cells, outputs and heading links."""

    SKIP_CLASSES = {"cell_input", "cell_output", "headerlink", "highlight"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.ids: set[str] = set()
        self._in_article = 0
        self._skip = 0  # depth inside a skipped element
        self._stack: list[bool] = []  # per open tag: does it start a skip?

    def handle_starttag(self, tag: str, attrs) -> None:
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag in ("br", "img", "hr", "meta", "link", "input"):
            return
        classes = set((attrs.get("class") or "").split())
        starts = bool(self._skip) or tag in ("script", "style") or bool(classes & self.SKIP_CLASSES)
        if tag == "article" and "bd-article" in classes:
            self._in_article += 1
        self._stack.append(starts and not self._skip)
        if starts:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "img", "hr", "meta", "link", "input") or not self._stack:
            return
        self._stack.pop()
        if self._skip:
            self._skip -= 1
        if tag == "article" and self._in_article:
            self._in_article -= 1

    def handle_data(self, data: str) -> None:
        if self._in_article and not self._skip:
            self.parts.append(data)


def html_prose(page: Path) -> tuple[str, set[str]]:
    """The prose of a built page, and the ids of its elements."""
    parser = _Prose()
    parser.feed(page.read_text(encoding="utf-8"))
    return "".join(parser.parts), parser.ids


def page_prose(chapter: Path) -> tuple[str, set[str]]:
    return html_prose(ROOT / "_build" / "html" / chapter.relative_to(ROOT).with_suffix(".html"))


def missing_numbers(html_text: str, notebook_text: str) -> Counter:
    return Counter(NUMBER.findall(html_text)) - Counter(NUMBER.findall(notebook_text.replace("\\.", ".")))


# --- the chapters' launch notebooks ----------------------------------------------------------

def test_a_launch_notebook_for_every_chapter(launch) -> None:
    assert len(launch) == len(CHAPTERS) >= 5
    for chapter, nb in launch.items():
        nbformat.validate(nb)
        assert nb.metadata["launch_notebook"]["source"] == chapter.name


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_no_myst_syntax_survives(launch, chapter: Path) -> None:
    problems = myst_leftovers(markdown_text(launch[chapter]))
    assert not problems, "\n".join(problems[:20])
    # positive control: the chapter itself is full of it
    assert myst_leftovers(markdown_text(nbformat.read(chapter, as_version=4)))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_number_of_the_page_is_in_the_notebook(built_html, launch, chapter: Path) -> None:
    prose, _ = page_prose(chapter)
    numbers = NUMBER.findall(prose)
    assert len(numbers) > 50, f"only {len(numbers)} numbers found in the page's prose: is the parser broken?"
    missing = missing_numbers(prose, markdown_text(launch[chapter]))
    assert not missing, f"numbers on the page but not in the launch notebook (count): {dict(missing)}"
    # negative control: the chapter's own markdown misses its glued numbers
    assert missing_numbers(prose, markdown_text(nbformat.read(chapter, as_version=4)))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_figure_and_exercise_numbers_and_links(built_html, launch, chapter: Path) -> None:
    prose, _ = page_prose(chapter)
    text = markdown_text(launch[chapter])
    shown = re.findall(r"(?:Fig\.|Exercise) \d+\.\d+", prose)
    assert shown, "the page shows no figure or exercise number"
    missing = Counter(shown) - Counter(re.findall(r"(?:Fig\.|Exercise) \d+\.\d+", text))
    assert not missing, f"not in the launch notebook: {dict(missing)}"
    base = base_url()
    links = re.findall(r"\]\((" + re.escape(base) + r"[^)\s]*)\)", text)
    assert links, "no link to the published book"
    broken = []
    for url in links:
        parsed = urlparse(url[len(base):])
        page = ROOT / "_build" / "html" / parsed.path
        if not page.is_file():
            broken.append(f"{url}: no page {parsed.path}")
        elif parsed.fragment:
            if parsed.fragment not in html_prose(page)[1]:
                broken.append(f"{url}: no #{parsed.fragment} in {parsed.path}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_same_code_and_outputs_as_the_chapter(launch, chapter: Path) -> None:
    source = nbformat.read(chapter, as_version=4)
    code = [c for c in source.cells if c.cell_type == "code"]
    launched = [c for c in launch[chapter].cells if c.cell_type == "code"]
    assert [c.source for c in launched] == [c.source for c in code]
    for ours, theirs in zip(launched, code, strict=True):
        assert ours.outputs == [o for o in theirs.outputs if not ln.is_glue_record(o)], ours.source[:80]
        assert not any(ln.is_glue_record(o) for o in ours.outputs)
    assert 'if "google.colab" in sys.modules' in launched[0].source, "the Colab setup cell is not first"
    assert launched[0].metadata["jupyter"]["source_hidden"] is True


def test_download_button_serves_the_launch_notebook(built_html: Path, launch) -> None:
    for chapter in CHAPTERS:
        served = built_html / "_sources" / chapter.relative_to(ROOT)
        assert served.read_bytes() == launch_of(chapter).read_bytes(), f"{served} is not the launch notebook"


def test_solutions_are_marked_and_folded(launch) -> None:
    for chapter, nb in launch.items():
        solutions = [c for c in nb.cells if c.cell_type == "markdown" and re.match(r"#+ Solution to Exercise \d", c.source)]
        ends = [c for c in nb.cells if c.cell_type == "markdown" and "*End of the solution to Exercise" in c.source]
        n = len(se.solutions_in(chapter))
        assert len(solutions) == len(ends) == n, chapter.name
        assert all(c.metadata.get("jp-MarkdownHeadingCollapsed") for c in solutions), chapter.name


# --- the converter, unit by unit ---------------------------------------------------------------

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d3ce2a0000000049454e44ae426082")).decode()
DOC = "book/09_fixture"


def glue_output(name: str, data: dict) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={ln.GLUE_PREFIX + k: v for k, v in data.items()},
                                  metadata={"scrapbook": {"name": name, "mime_prefix": ln.GLUE_PREFIX}})


def fixture_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    glue_cell = code("glue(...)")
    glue_cell.outputs = [
        glue_output("n", {"text/plain": "4286"}),
        glue_output("x", {"text/plain": "3.14159"}),
        glue_output("state", {"text/plain": "'KY'"}),
        glue_output("plot", {"image/png": PNG, "text/plain": "<Figure>"}),
        glue_output("table", {"text/html": "<table><tr><td>42</td></tr></table>", "text/plain": "t"}),
        nbformat.v4.new_output("stream", text="visible\n"),
    ]
    glue_cell.metadata["tags"] = ["remove-cell"]
    figure_cell = code("plot()")
    figure_cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<F>"})]
    figure_cell.metadata["mystnb"] = {"figure": {"name": "fig-a", "caption": "Caption with {glue:text}`n:,d` rows."}}
    nb.cells = [
        md("# Fixture chapter"),
        glue_cell,
        md("(sec-a)=\n## Section A\n\nThere are {glue:text}`n:,d` rows, pi is {glue:text}`x:.2f` in "
           "{glue:text}`state`; see {numref}`fig-a`, {numref}`Figure {number} <fig-a>`, {ref}`sec-a`, "
           "{ref}`the exercise <ex-1>`, {ref}`ex-1`, {numref}`sec-a` and {doc}`other`.\n"
           "{glue:text}`n:d`. That number starts a line.\n% a comment\n`{glue:text}` in code stays."),
        md("```{note}\nInline $a_{i}$ and\n$$\nb = 1\n$$\n```\n\n:::{admonition} Own title\n:class: tip\nBody.\n:::"),
        md("\\begin{align}\nx &= 1\n\\end{align}"),
        figure_cell,
        md("```{figure} fixture.png\n:name: fig-b\n:alt: A dot\n\nCaption of b.\n```"),
        md("```{glue:figure} plot\n:name: fig-c\n\nGlued caption.\n```\n\n```{glue} table\n```"),
        md("hidden prose"),
        md("## Exercises\n\n```{exercise}\n:label: ex-1\n\nDo {glue:text}`n:,d` things.\n```\n\n"
           "```{solution} ex-1\n:class: dropdown\n\nThe answer is $x$.\n```"),
        md("```{exercise}\n:label: ex-2\n\nCompute.\n```"),
        md("```{solution-start} ex-2\n:class: dropdown\n```"),
        code("answer = 42"),
        md("```{solution-end}\n```"),
        md("```{mystery} arg\nodd\n```"),
    ]
    nb.cells[8].metadata["tags"] = ["remove-cell"]
    return nb


def fixture_refs() -> ln.References:
    return ln.References(
        base_url="https://example.github.io/course/",
        labels={"sec-a": (DOC, "section-a", "Section A"), "fig-a": (DOC, "fig-a", "Caption"),
                "fig-b": (DOC, "fig-b", "Caption of b."), "fig-c": (DOC, "fig-c", "Glued caption."),
                "ex-1": (DOC, "ex-1", "Exercise"), "ex-2": (DOC, "ex-2", "Exercise")},
        fignumbers={DOC: {"figure": {"fig-a": (9, 1), "fig-b": (9, 2), "fig-c": (9, 3)},
                          "exercise": {"ex-1": (9, 1), "ex-2": (9, 2)}}},
        sections={DOC: [ln.Section("", "Fixture chapter", (9,)), ln.Section("#section-a", "Section A", (9, 1)),
                        ln.Section("#exercises", "Exercises", (9, 2))]},
        titles={DOC: "Fixture chapter", "book/other": "Another page"},
        exercises={"ex-1": {"docname": DOC, "numbered": True, "title": "Exercise"},
                   "ex-2": {"docname": DOC, "numbered": True, "title": "Exercise"}},
        project="The Course",
    )


@pytest.fixture
def converted(tmp_path: Path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "fixture.png").write_bytes(base64.b64decode(PNG))
    source = tmp_path / "book" / "09_fixture.ipynb"
    nb, warnings = ln.convert(fixture_notebook(), fixture_refs(), DOC, source)
    return nb, warnings


def test_converter_fixture(converted) -> None:
    nb, warnings = converted
    text = markdown_text(nb)
    url = "https://example.github.io/course/book/09_fixture.html"
    expected = [
        "# 9. Fixture chapter",
        f"[web page]({url})",
        '<a id="sec-a"></a>\n## 9.1. Section A',
        "There are 4,286 rows, pi is 3.14 in KY",
        f"see [Fig. 9.1]({url}#fig-a), [Figure 9.1]({url}#fig-a), [Section A]({url}#section-a), "
        f"[the exercise]({url}#ex-1), [Exercise 9.1]({url}#ex-1), [Section 9.1]({url}#section-a) and "
        "[Another page](https://example.github.io/course/book/other.html).",
        "4286\\. That number starts a line.",
        "`{glue:text}` in code stays.",
        "> **Note**\n>\n> Inline $a_{i}$ and\n> $$ b = 1 $$",
        "> **Own title**\n>\n> Body.",
        "$$\n\\begin{align}\nx &= 1\n\\end{align}\n$$",
        '<a id="fig-a"></a>\n\n**Fig. 9.1** Caption with 4,286 rows.',
        '<a id="fig-b"></a>\n\n![A dot](attachment:fixture.png)\n\n**Fig. 9.2** Caption of b.',
        '<a id="fig-c"></a>\n\n![plot](attachment:plot.png)\n\n**Fig. 9.3** Glued caption.',
        "<table><tr><td>42</td></tr></table>",
        '<a id="ex-1"></a>\n\n### Exercise 9.1\n\nDo 4,286 things.',
        "<details>\n<summary>Solution to Exercise 9.1</summary>\n\nThe answer is $x$.\n\n</details>",
        "#### Solution to Exercise 9.2",
        "*End of the solution to Exercise 9.2.*",
    ]
    for piece in expected:
        assert piece in text, f"missing:\n{piece}\n--- in ---\n{text}"
    assert "hidden prose" not in text and "% a comment" not in text
    assert not [p for p in myst_leftovers(text) if "glue:text}` in code" not in p]
    assert warnings == ["directive {mystery} is not converted: its content is shown as a block quote"]
    # attachments carry the images: nothing is loaded from elsewhere
    attached = {k for c in nb.cells if c.cell_type == "markdown" for k in c.get("attachments", {})}
    assert attached == {"fixture.png", "plot.png"}
    # code: kept in order, glue records dropped, remove-cell folded, not removed
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.source for c in code] == ["glue(...)", "plot()", "answer = 42"]
    assert [o.output_type for o in code[0].outputs] == ["stream"]
    assert code[0].metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    # the figure cell is followed by its caption; the gated solution is folded
    index = next(i for i, c in enumerate(nb.cells) if c.source == "plot()")
    assert nb.cells[index + 1].source.endswith("**Fig. 9.1** Caption with 4,286 rows.")
    heading = next(c for c in nb.cells if c.source.startswith("#### Solution to Exercise 9.2"))
    assert heading.metadata.get("jp-MarkdownHeadingCollapsed") is None  # prose follows: not folded


def test_converter_reports_what_it_cannot_resolve(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "{numref}`fig-nowhere`, {ref}`no-label`, {glue:text}`nothing:.2f`, {doc}`missing`, {cite}`x`")]
    out, warnings = ln.convert(nb, fixture_refs(), DOC, tmp_path / "x.ipynb")
    assert len(warnings) == 5, warnings
    assert not myst_leftovers(markdown_text(out))


def test_published_base_url() -> None:
    assert ln.published_base_url("https://github.com/mlm-course/multilevel-models-python") == \
        "https://mlm-course.github.io/multilevel-models-python/"
    assert ln.published_base_url("https://github.com/Org/org.github.io") == "https://org.github.io/"
    assert ln.published_base_url("https://github.com/a/b", "https://course.example.org/book") == \
        "https://course.example.org/book/"
    with pytest.raises(ValueError):
        ln.published_base_url("https://gitlab.com/a/b")
