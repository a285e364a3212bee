"""The book builds with zero warnings, and the site it produces is self-contained,
accessible and renders the exercises as intended.

"Self-contained" means: no page pulls a script, stylesheet or font from another host.
MathJax in particular is served from the site (`_static/mathjax/`, see _config.yml).
"Accessible" (checked on the HTML): every page has one h1 and no skipped heading level;
every image in a page's content has real alt text and sits in a figure with a caption.
Exercises (sphinx-exercise) are numbered and carry their label as id, so {ref} links and
URLs with #label work; every solution is a collapsed dropdown titled with a link to its
exercise. The Colab setup cell of the chapters does not appear on the pages.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import nbformat
import pytest
import student_edition as se  # scripts/, on sys.path through conftest.py

ROOT = Path(__file__).resolve().parents[1]

# Resource-loading tags and the attribute that holds the address they load.
RESOURCE_ATTRS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src"}
# <link rel=...> values that only name a page (navigation), not a resource the browser loads.
NAV_RELS = {"index", "search", "next", "prev", "canonical", "author", "license", "help", "alternate"}
CDN_HOSTS = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|googleapis|gstatic|mathjax\.org|polyfill\.io")


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = RESOURCE_ATTRS.get(tag)
        values = dict(attrs)
        if attr is None or not values.get(attr):
            return
        if tag == "link" and set((values.get("rel") or "").split()) <= NAV_RELS:
            return
        self.urls.append((tag, values[attr]))


def resources(page: Path) -> list[tuple[str, str]]:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


def html_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)


def test_build_succeeds_without_warnings(book_build) -> None:
    assert book_build.returncode == 0 and not book_build.warnings, (
        "jupyter-book build . --all -W -n --keep-going failed or warned:\n"
        + "\n".join(book_build.warnings or book_build.output.splitlines()[-40:])
    )
    assert (book_build.html / "index.html").is_file()
    assert (book_build.html / "book" / "intro.html").is_file()


def test_no_page_loads_anything_from_another_host(built_html: Path) -> None:
    pages = html_pages(built_html)
    assert pages, "no HTML pages in the build"
    external = [
        f"{page.relative_to(built_html)}: <{tag}> {url}"
        for page in pages
        for tag, url in resources(page)
        if urlparse(url).scheme not in ("", "data") or url.startswith("//")
    ]
    assert not external, "pages load external resources:\n" + "\n".join(external)
    cdn = [str(p.relative_to(built_html)) for p in pages if CDN_HOSTS.search(p.read_text(encoding="utf-8"))]
    assert not cdn, f"pages mention a CDN host: {cdn}"


def test_every_local_script_and_stylesheet_exists(built_html: Path) -> None:
    missing = []
    for page in html_pages(built_html):
        base = page.relative_to(built_html).as_posix()
        for tag, url in resources(page):
            if urlparse(url).scheme or url.startswith("//"):
                continue  # data: URIs; other hosts are reported by the test above
            target = urlparse(urljoin(f"http://site/{base}", url)).path.lstrip("/")
            if not (built_html / target).is_file():
                missing.append(f"{base}: <{tag}> {url}")
    assert not missing, "references to files that are not in the build:\n" + "\n".join(missing)


def test_index_redirects_to_the_intro(built_html: Path) -> None:
    assert "book/intro.html" in (built_html / "index.html").read_text(encoding="utf-8")


def test_mathjax_is_the_local_copy(built_html: Path) -> None:
    page = "book/intro.html"  # a page one folder deep: relative paths must climb out of book/
    path = built_html / page
    srcs = [url for tag, url in resources(path) if tag == "script" and "mathjax" in url.lower()]
    assert len(srcs) == 1, f"expected one MathJax script on {page}, found {srcs}"
    resolved = urlparse(urljoin(f"http://site/{page}", srcs[0])).path
    assert resolved == "/_static/mathjax/tex-mml-chtml.js", resolved
    # the fonts MathJax's CommonHTML output asks for sit beside it
    fonts = built_html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff")), f"MathJax fonts missing in {fonts}"


def test_no_build_inputs_leak_into_the_site(built_html: Path) -> None:
    leaked = [name for name in ("tests", "mlmhelpers", "node_modules", ".venv", "benchmarks", "README.html")
              if (built_html / name).exists()]
    assert not leaked, f"files that are not book pages were published: {leaked}"
    assert (ROOT / "_config.yml").is_file()


# --- structure and accessibility of the pages ----------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
IMAGE_FILE = re.compile(r"\.(png|jpe?g|gif|svg|webp)$", re.I)


class _Structure(HTMLParser):
    """Headings shown on screen (outside the theme's print-only block), and the images and
    figures of the page's content (<article class="bd-article">)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, list[str]]] = []
        self.headings: list[tuple[int, str]] = []
        self.images: list[dict] = []
        self.figures: list[dict] = []
        self._text: list[str] | None = None  # collecting a heading's or caption's text

    def _inside(self, tag: str, cls: str | None = None) -> bool:
        return any(t == tag and (cls is None or cls in c) for t, c in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        in_article = self._inside("article", "bd-article")
        if tag == "img":
            if in_article:
                self.images.append({"src": values.get("src") or "", "alt": (values.get("alt") or "").strip(),
                                    "in_figure": self._inside("figure")})
            return
        if tag in VOID:
            return
        self.stack.append((tag, classes))
        if tag == "figure" and in_article:
            self.figures.append({"id": values.get("id") or "(no id)", "caption": ""})
        elif tag == "figcaption" and self.figures:
            self._text = []
        elif tag in HEADINGS and not any("onlyprint" in c for _, c in self.stack):
            self.headings.append((int(tag[1]), ""))
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        if self._text is not None and tag == "figcaption":
            caption = " ".join("".join(self._text).split())
            self.figures[-1]["caption"] = re.sub(r"^(Fig\.|Figure)\s*[\d.]+\s*", "", caption)  # number alone is no caption
            self._text = None
        elif self._text is not None and tag in HEADINGS and self.headings:
            level, _ = self.headings[-1]
            self.headings[-1] = (level, " ".join("".join(self._text).split()).rstrip("#"))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def structure(page: Path) -> _Structure:
    parser = _Structure()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_one_h1_per_page_and_no_skipped_heading_level(built_html: Path) -> None:
    problems = []
    for page in html_pages(built_html):
        rel = page.relative_to(built_html).as_posix()
        if "http-equiv=\"refresh\"" in page.read_text(encoding="utf-8").lower():
            continue  # index.html: a redirect, not a page
        headings = structure(page).headings
        h1 = [text for level, text in headings if level == 1]
        if len(h1) != 1:
            problems.append(f"{rel}: {len(h1)} h1 headings {h1}")
        previous = 0
        for level, text in headings:
            if level > previous + 1:
                problems.append(f"{rel}: h{level} {text!r} follows h{previous} (level skipped)")
            previous = level
    assert not problems, "heading structure:\n" + "\n".join(problems)


def test_every_figure_has_a_caption_and_alt_text(built_html: Path) -> None:
    """In the content of every page: each image has alt text that describes it (not empty,
    not the file name MyST-NB uses when a cell gives none: set the cell metadata
    mystnb.image.alt) and sits in a figure whose caption is not empty (mystnb.figure.caption)."""
    problems, images = [], 0
    for page in html_pages(built_html):
        rel = page.relative_to(built_html).as_posix()
        found = structure(page)
        images += len(found.images)
        for image in found.images:
            if not image["alt"] or image["alt"] == image["src"] or IMAGE_FILE.search(image["alt"]):
                problems.append(f"{rel}: image {image['src']} has no alt text (alt={image['alt']!r})")
            if not image["in_figure"]:
                problems.append(f"{rel}: image {image['src']} is not in a figure with a caption")
        problems += [f"{rel}: figure {f['id']} has no caption" for f in found.figures if not f["caption"]]
    assert not problems, "figures and images:\n" + "\n".join(problems)


# --- exercises and solutions ------------------------------------------------------------------

EXERCISE_HTML = re.compile(
    r'<div class="exercise[^"]*" id="(?P<label>[^"]+)">\s*<p class="admonition-title">'
    r'(?:<span class="caption-number">Exercise (?P<number>[\d.]+) </span>)?')
SOLUTION_HTML = re.compile(
    r'<div class="(?P<classes>solution\b[^"]*)" id="[^"]+">\s*<p class="admonition-title">(?P<title>.*?)</p>', re.S)


def test_exercises_are_numbered_and_solutions_are_dropdowns(built_html: Path) -> None:
    problems, numbers, n_exercises = [], [], 0
    for source in se.toc_files(ROOT):
        rel = source.relative_to(ROOT).as_posix()
        page = (built_html / rel).with_suffix(".html").read_text(encoding="utf-8")
        if source.suffix == ".ipynb":
            nb = nbformat.read(source, as_version=4)
            found = [ex for c in nb.cells if c.cell_type == "markdown" for ex in se.exercises(c.source)]
        else:
            found = se.exercises(source.read_text(encoding="utf-8"))
        n_exercises += len(found)
        rendered = {m["label"]: m["number"] for m in EXERCISE_HTML.finditer(page)}
        for label, options in found:
            if not label:
                problems.append(f"{rel}: an exercise without :label:")
            elif label not in rendered:
                problems.append(f"{rel}: exercise {label} not rendered with its label as id")
            elif rendered[label] is None and "nonumber" not in options:
                problems.append(f"{rel}: exercise {label} has no number")
            elif rendered[label]:
                numbers.append(rendered[label])
        solutions = list(SOLUTION_HTML.finditer(page))
        expected = len(se.solutions_in(source))
        if len(solutions) != expected:
            problems.append(f"{rel}: {expected} solutions in the source, {len(solutions)} on the page")
        for m in solutions:
            if "dropdown" not in m["classes"].split():
                problems.append(f"{rel}: a solution is not a dropdown (add ':class: dropdown'): {m['title'][:80]}")
            target = re.search(r'href="#([^"]+)"', m["title"])
            if not target or target[1] not in rendered:
                problems.append(f"{rel}: solution title does not link to an exercise: {m['title'][:80]}")
    assert not problems, "\n".join(problems)
    assert len(numbers) == len(set(numbers)), f"exercise numbers repeat: {sorted(numbers)}"
    if not n_exercises:
        pytest.skip("no exercises in the book yet")


def test_colab_setup_cell_is_not_shown(built_html: Path) -> None:
    shown = [p.relative_to(built_html).as_posix() for p in html_pages(built_html)
             if "google.colab" in p.read_text(encoding="utf-8")]
    assert not shown, f"the Colab setup cell (tag remove-cell) is visible on: {shown}"
