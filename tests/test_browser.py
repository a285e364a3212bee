"""The built book, opened in a real (headless) browser.

Debian's Chromium (/usr/bin/chromium, `apt-get install chromium`) driven by Playwright for
Python. Playwright's own browser downloads are never used (no `playwright install`).
The site is served from `_build/html` by a local http.server on 127.0.0.1; every request the
page makes is recorded, and any request to another host is blocked and reported.

Fixtures for further checks:
    site       -> Site(base_url, pages): the server and every page of the build
    browser    -> a Playwright BrowserContext (fresh profile, offline by construction)
    visit(p)   -> opens page p, waits for it to settle, returns a Visit with the page and
                  what happened while loading (requests, console errors, failed loads)
"""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Error as PlaywrightError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
# Schemes that never leave the machine.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome-error"}


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


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname == LOCAL_HOST


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


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed (apt-get install chromium): browser checks skipped")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # fresh user-data-dir
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            service_workers="block",
        )
        # Nothing may leave the machine: block (and so record) every other host.
        context.route(
            lambda url: not is_local(url),
            lambda route: route.abort("blockedbyclient"),
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def visit(site: Site, browser):
    opened = []

    def _visit(page_path: str) -> Visit:
        page = browser.new_page()
        opened.append(page)
        record = Visit(page)
        page.on("request", lambda req: record.requests.append(req.url))
        page.on("requestfailed", lambda req: record.failed.append(f"{req.url} ({req.failure})"))
        page.on("response", lambda resp: resp.status >= 400 and record.failed.append(f"{resp.url} ({resp.status})"))
        page.on("console", lambda msg: msg.type == "error" and record.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: record.console_errors.append(str(exc)))
        page.goto(site.url(page_path), wait_until="load")
        page.wait_for_load_state("networkidle")
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
