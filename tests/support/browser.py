"""A real headless browser for the web pages: Debian's chromium, driven by Playwright.

Playwright's own browser downloads are not used (`playwright install` needs the internet and drifts from the
system): the test set-up installs the `chromium` package with apt-get when it is missing, and fails if it cannot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from tests.support.system import ensure_tool

TIMEOUT_MS = 10_000


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Headless Debian chromium, installed first if missing, closed when the block ends."""
    executable = ensure_tool("chromium", "chromium")
    # Chromium refuses to start as root with its sandbox on (it needs an unprivileged user for its namespaces);
    # the tests run as root in CI containers, so only then is the sandbox turned off.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=args, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A page as a visitor saw it: what the browser complained about while loading it."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.console_errors + self.failed_requests


@contextmanager
def visit(browser: Browser, url: str) -> Iterator[Visit]:
    """Open `url` in a fresh browser context and wait for it (images included) to load."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    seen = Visit(page)
    page.on("console", lambda message: _console(seen, message))
    page.on("pageerror", lambda error: seen.console_errors.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: _failed(seen, request))
    page.on("response", lambda response: _refused(seen, response))
    try:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, f"{url} answered {response and response.status}"
        yield seen
    finally:
        context.close()


def _console(seen: Visit, message: ConsoleMessage) -> None:
    if message.type == "error":
        seen.console_errors.append(f"console: {message.text} ({message.location.get('url', '')})")


def _failed(seen: Visit, request: Request) -> None:
    seen.failed_requests.append(f"{request.method} {request.url} failed: {request.failure}")


def _refused(seen: Visit, response: Response) -> None:
    if response.status >= 400:
        seen.failed_requests.append(f"{response.request.method} {response.url} answered {response.status}")
