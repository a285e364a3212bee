"""The book builds with zero warnings, and the site it produces is self-contained.

"Self-contained" means: no page pulls a script, stylesheet or font from another host.
MathJax in particular is served from the site (`_static/mathjax/`, see _config.yml).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

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
