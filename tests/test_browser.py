"""The built book, opened in a real (headless) browser, page by page.

Debian's Chromium (/usr/bin/chromium, `apt-get install chromium`) driven by Playwright for
Python. Playwright's own browser downloads are never used (no `playwright install`); without
/usr/bin/chromium the browser checks are skipped with a message (CI installs it: .ci/run).
The site is served from `_build/html` by a local http.server on 127.0.0.1; every request the
page makes is recorded, and any request to another host is blocked and reported.

Every page of the build is visited once (`reports` fixture), and a full-page screenshot is
saved to `_build/screenshots/`. The checks, each over all pages:

* no console errors, no failed loads, no request leaves 127.0.0.1;
* every <img> has loaded (naturalWidth > 0);
* on pages with math, MathJax has typeset every formula and no raw TeX is visible;
* chapter pages made from notebooks have Binder and Colab launch links (derived from
  `_config.yml`'s repository url) and a download link to their .ipynb; every page with a
  source has a download link to it;
* solutions start collapsed and open with a click.

Without a browser: every internal link (`<a href>` to a local page or `#anchor`) of every
page resolves to a file of the build and, when it has one, to an element with that id.

Fixtures for further checks:
    site       -> Site(base_url, pages): the server and every page of the build
    browser    -> a Playwright BrowserContext (fresh profile, offline by construction; defined
                  in conftest.py, shared with tests/test_launch_jupyterlab.py)
    visit(p)   -> opens page p, waits for it to settle, returns a Visit with the page and
                  what happened while loading (requests, console errors, failed loads)
    reports    -> {page: PageReport}: what the visit of every page found
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml
from conftest import LOCAL_HOST, is_local, timed  # the `browser` fixture is in conftest.py
from playwright.sync_api import Error as PlaywrightError

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"

@dataclass
class Site:
    base_url: str  # ends with "/"
    pages: list[str]  # paths of every HTML page of the build, relative to the site root

    def url(self, page: str) -> str:
        return self.base_url + page


@dataclass
class Visit:
    page: object  # playwright.sync_api.Page
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not is_local(u)]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture(scope="session")
def site(built_html: Path):
    """Serve the built book on a random local port for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(built_html))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pages = sorted(
        p.relative_to(built_html).as_posix()
        for p in built_html.rglob("*.html")
        if "_static" not in p.relative_to(built_html).parts
    )
    try:
        yield Site(f"http://{LOCAL_HOST}:{server.server_address[1]}/", pages)
    finally:
        server.shutdown()
        server.server_close()


def open_page(context, url: str) -> Visit:
    """Open url in a new tab of the browser context, wait until the network is idle."""
    page = context.new_page()
    record = Visit(page)
    page.on("request", lambda req: record.requests.append(req.url))
    page.on("requestfailed", lambda req: record.failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and record.failed.append(f"{resp.url} ({resp.status})"))
    page.on("console", lambda msg: msg.type == "error" and record.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: record.console_errors.append(str(exc)))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return record


@pytest.fixture
def visit(site: Site, browser):
    opened = []

    def _visit(page_path: str) -> Visit:
        record = open_page(browser, site.url(page_path))
        opened.append(record.page)
        return record

    yield _visit
    for page in opened:
        page.close()


def test_site_has_pages(site: Site) -> None:
    assert "index.html" in site.pages and "book/intro.html" in site.pages, site.pages


def test_math_is_typeset_offline(visit) -> None:
    v = visit("book/intro.html")
    page = v.page
    # MathJax 3 finishes typesetting when its startup promise resolves.
    try:
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15_000
        )
        page.evaluate("() => MathJax.startup.promise")
        page.wait_for_load_state("networkidle")  # fonts requested by the typeset math
    except PlaywrightError as exc:
        pytest.fail(
            f"MathJax did not start: {exc.message.splitlines()[0]}\n"
            f"requests to other hosts (blocked): {v.external_requests}\n"
            f"failed loads: {v.failed}\nconsole errors: {v.console_errors}"
        )

    assert page.locator("mjx-container").count() >= 2, "MathJax rendered no math"
    assert page.locator('mjx-container[display="true"]').count() >= 1, "display math not rendered"
    text = page.locator("main").inner_text()
    for raw in ("\\(", "\\[", "$y_{ij}", "\\alpha"):
        assert raw not in text, f"raw TeX {raw!r} is visible on the page"

    assert any("/_static/mathjax/tex-mml-chtml.js" in u for u in v.requests), v.requests
    assert not v.external_requests, f"requests to other hosts: {v.external_requests}"
    assert not v.failed, f"failed loads: {v.failed}"
    assert not v.console_errors, f"console errors: {v.console_errors}"


# --- every page, in the browser ------------------------------------------------------------

# Forces lazy images to load, waits for every image, returns the src of those that failed.
BROKEN_IMAGES_JS = """async () => {
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute("src"));
}"""
UNTYPESET_MATH_JS = """() => [...document.querySelectorAll('.math')]
  .filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.trim().slice(0, 60))"""
RAW_TEX = ("\\(", "\\[", "$$", "\\begin{")


@dataclass
class PageReport:
    path: str
    visit: Visit
    broken_images: list[str] = field(default_factory=list)
    math_elements: int = 0
    math_problems: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # absolute hrefs of every <a>
    download_links: list[str] = field(default_factory=list)
    solutions: int = 0
    solution_problems: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def _check_math(page, report: PageReport) -> None:
    report.math_elements = page.locator(".math").count()
    if not report.math_elements:
        return
    try:
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15_000)
        page.evaluate("() => MathJax.startup.promise")
    except PlaywrightError as exc:
        report.math_problems.append(f"MathJax did not start: {exc.message.splitlines()[0]}")
        return
    report.math_problems += [f"not typeset: {tex!r}" for tex in page.evaluate(UNTYPESET_MATH_JS)]
    text = page.locator("main").inner_text()
    report.math_problems += [f"raw TeX {raw!r} visible" for raw in RAW_TEX if raw in text]


def _check_solutions(page, report: PageReport) -> None:
    """Solutions (sphinx-exercise, class dropdown) are collapsed until their title is clicked."""
    solutions = page.locator("div.solution")
    report.solutions = solutions.count()
    for i in range(report.solutions):
        solution = solutions.nth(i)
        label = solution.get_attribute("id")
        body = solution.locator(":scope > section")
        if body.count() == 0:
            report.solution_problems.append(f"{label}: no solution body")
            continue
        if body.first.is_visible():
            report.solution_problems.append(f"{label}: shown before it is opened (missing ':class: dropdown'?)")
            continue
        if i == 0:  # opening one is enough to show the mechanism works
            solution.locator(":scope > .admonition-title").click()
            page.wait_for_timeout(300)
            if not body.first.is_visible():
                report.solution_problems.append(f"{label}: still hidden after a click on its title")


@pytest.fixture(scope="session")
def reports(site: Site, browser) -> dict[str, PageReport]:
    """Visit every page of the build once; save a full-page screenshot of each."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    found = {}
    with timed(f"browser: {len(site.pages)} pages visited, screenshots saved"):
        for path in site.pages:
            v = open_page(browser, site.url(path))
            page = v.page
            report = PageReport(path, v)
            report.broken_images = page.evaluate(BROKEN_IMAGES_JS)
            _check_math(page, report)
            report.links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            report.download_links = page.eval_on_selector_all(
                ".dropdown-download-buttons a[href]", "els => els.map(e => e.href)")
            page.wait_for_load_state("networkidle")  # fonts requested by the typeset math
            report.screenshot = SCREENSHOTS / (path.replace("/", "__").removesuffix(".html") + ".png")
            page.screenshot(path=str(report.screenshot), full_page=True)
            _check_solutions(page, report)  # last: it changes the page
            page.close()
            found[path] = report
    return found


def _repository() -> dict:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return {**config["repository"], **config["launch_buttons"]}


def _source_of(built_html: Path, page: str) -> Path | None:
    """The downloadable source of a page in the build (_sources/<page>.ipynb or .md)."""
    stem = page.removesuffix(".html")
    for ext in (".ipynb", ".md"):
        if (built_html / "_sources" / f"{stem}{ext}").is_file():
            return built_html / "_sources" / f"{stem}{ext}"
    return None


def _failures(reports: dict[str, PageReport], attribute) -> str:
    lines = [f"{path}: {problem}" for path, r in reports.items() for problem in attribute(r)]
    return "\n".join(lines)


def test_every_page_was_visited(site: Site, reports) -> None:
    assert sorted(reports) == site.pages
    missing = [p for p, r in reports.items() if not (r.screenshot and r.screenshot.stat().st_size > 0)]
    assert not missing, f"no screenshot for: {missing}"


def test_no_console_errors_or_failed_loads(reports) -> None:
    problems = _failures(reports, lambda r: r.visit.console_errors + [f"failed: {f}" for f in r.visit.failed])
    assert not problems, "pages with console errors or failed loads:\n" + problems


def test_no_request_leaves_the_machine(reports) -> None:
    problems = _failures(reports, lambda r: r.visit.external_requests)
    assert not problems, "requests to other hosts (blocked):\n" + problems


def test_every_image_loads(reports) -> None:
    problems = _failures(reports, lambda r: [f"image not loaded: {src}" for src in r.broken_images])
    assert not problems, problems


def test_math_is_typeset_on_every_page_with_math(reports) -> None:
    assert any(r.math_elements for r in reports.values()), "no page has math: the check is vacuous"
    problems = _failures(reports, lambda r: r.math_problems)
    assert not problems, "math not typeset:\n" + problems


def test_chapter_pages_have_launch_and_download_buttons(reports, built_html: Path) -> None:
    repo = _repository()
    owner_repo = "/".join(urlparse(repo["url"]).path.strip("/").split("/")[:2])
    branch = repo.get("branch", "main")
    binder, colab = repo["binderhub_url"].rstrip("/"), repo["colab_url"].rstrip("/")
    problems, notebooks = [], 0
    for path, r in reports.items():
        source = _source_of(built_html, path)
        if source is None:
            continue
        rel = source.relative_to(built_html / "_sources").as_posix()
        if not any(urlparse(link).path.endswith(f"/_sources/{rel}") for link in r.download_links):
            problems.append(f"{path}: no download link to _sources/{rel}")
        if source.suffix != ".ipynb":
            continue
        notebooks += 1
        expected = {
            "Binder": f"{binder}/v2/gh/{owner_repo}/{branch}?urlpath=lab/tree/{rel}",
            "Colab": f"{colab}/github/{owner_repo}/blob/{branch}/{rel}",
        }
        problems += [f"{path}: no {name} link {url}" for name, url in expected.items() if url not in r.links]
        if not (ROOT / rel).is_file():
            problems.append(f"{path}: the launch links open {rel}, which is not in the repository")
    assert not problems, "\n".join(problems)
    if not notebooks:
        pytest.skip("no notebook chapter in the book yet: launch buttons not checked")


def test_solutions_start_collapsed(reports) -> None:
    problems = _failures(reports, lambda r: r.solution_problems)
    assert not problems, "solutions not in working dropdowns:\n" + problems


# --- every internal link, without a browser -----------------------------------------------

class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(values[key])
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])


def test_internal_links_resolve(built_html: Path) -> None:
    """Every <a href> to a page or anchor of the site points to an existing file and id."""
    pages = sorted(p for p in built_html.rglob("*.html") if "_static" not in p.relative_to(built_html).parts)
    parsed = {}
    for page in pages:
        parser = _Anchors()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page.relative_to(built_html).as_posix()] = parser
    broken, checked = [], 0
    for rel, parser in parsed.items():
        for href in parser.hrefs:
            url = urlparse(href)
            if url.scheme or href.startswith("//") or href.startswith("javascript:"):
                continue  # other hosts (GitHub, Binder, ...) are navigation, not checked here
            target = urlparse(urljoin(f"http://site/{rel}", href))
            path = unquote(target.path).lstrip("/") or "index.html"
            if path.endswith("/"):
                path += "index.html"
            checked += 1
            if not (built_html / path).is_file():
                broken.append(f"{rel}: {href} -> missing file {path}")
            elif target.fragment and path in parsed and unquote(target.fragment) not in parsed[path].ids:
                broken.append(f"{rel}: {href} -> no element with id {target.fragment!r} in {path}")
    assert checked, "no internal links found"
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken)
