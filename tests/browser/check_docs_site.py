"""The documentation site as a person sees it: Debian's chromium, headless, driven by Playwright.

Run by ``make docs-check`` (which installs chromium with apt-get when it is missing, so it needs
root) and by CI after ``make test``; ``pytest`` alone does not collect this file (its name does
not start with ``test_``), so ``make test`` works without root. It builds the site strict into
``site/``, serves it on a free loopback port, and checks the home page, the ``Pool`` reference
page (headings, a resolved cross-reference) and search; it saves a screenshot of the ``Pool``
page to ``site/_screenshots/pool.png`` (and the home page to ``home.png``) for a person to
look at.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
CHROMIUM = os.environ.get("AIOCONN_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000  # for any one thing to appear
PICK = "aioconn.Pool.acquire"  # the search result the search test follows


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request on stderr says nothing a failed assertion does not


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(SITE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    assert Path(CHROMIUM).is_file(), f"no chromium at {CHROMIUM}: run `make docs-check`"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert errors == [], errors  # the site's scripts ran without an exception


def screenshot(page: Page, name: str) -> None:
    """Save what the browser shows to ``site/_screenshots/<name>``, for a person to look at."""
    SITE.joinpath("_screenshots").mkdir(exist_ok=True)
    page.screenshot(path=str(SITE / "_screenshots" / name))


def heading_texts(page: Page, selector: str) -> list[str]:
    """The headings' text as a reader sees it, without the ``¶`` permalink after each."""
    return [text.replace("¶", "").strip() for text in page.locator(selector).all_inner_texts()]


def test_home_page_renders_its_headings_and_navigation(page: Page, site_url: str) -> None:
    page.goto(f"{site_url}/")
    assert heading_texts(page, "article h1") == ["aioconn"]
    assert heading_texts(page, "article h2") == [
        "A pool in ten lines",
        "Where to go",
        "See it work",
    ]
    nav = page.locator("nav.md-nav--primary")
    for section in ("Guides", "Reference", "Changelog"):
        expect(nav.get_by_text(section, exact=True).first).to_be_attached()
    screenshot(page, "home.png")


def test_a_cross_reference_leads_to_the_pool_reference_page(page: Page, site_url: str) -> None:
    page.goto(f"{site_url}/")
    link = page.locator("article a", has_text="Pool").first
    assert link.get_attribute("href") == "reference/pool/#aioconn.Pool"
    link.click()
    page.wait_for_url(f"{site_url}/reference/pool/#aioconn.Pool")
    assert heading_texts(page, "article h1") == ["aioconn.Pool"]
    assert "acquire" in " ".join(heading_texts(page, "article h3"))
    expect(page.locator('[id="aioconn.Pool"]')).to_be_visible()
    expect(page.locator('[id="aioconn.Pool.acquire"]')).to_be_attached()
    expect(page.locator('[id="aioconn.Lease"]')).to_be_attached()
    # The signature's types link to their own pages: a Connector to the connectors page.
    connector = page.locator('[id="aioconn.Pool"] ~ div a[href*="connector/#aioconn"]').first
    expect(connector).to_be_attached()
    screenshot(page, "pool.png")


def test_search_finds_acquire(page: Page, site_url: str) -> None:
    page.goto(f"{site_url}/")
    search = page.locator("input.md-search__input")
    search.click()
    search.fill("acquire")
    results = page.locator(".md-search-result__item")
    expect(results.first).to_be_visible()
    hrefs = [a.get_attribute("href") or "" for a in page.locator(".md-search-result a").all()]
    found = [href for href in hrefs if urlsplit(href)[2::2] == ("/reference/pool/", PICK)]
    assert len(found) == 1, hrefs
    page.locator(f'.md-search-result a[href="{found[0]}"]').click()
    expect(page.locator(f'[id="{PICK}"]')).to_be_in_viewport()
