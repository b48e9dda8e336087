"""The landing page in a real browser (headless Debian chromium): what a visitor sees, not just what the server sends.

One browser and one server (a SQLite home whose demo quicklooks are drawn) serve the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser

from nephelae.analysis.quicklooks import MAP, SERIES, quicklook_dir, render_demo_quicklooks
from nephelae.db import make_engine
from tests.analysis.support import migrated_settings, serve_demo_l4
from tests.support.browser import launched_chromium, visit
from tests.support.server import RunningServer, serve_in_thread

# The links a visitor needs to reach the API; the Swagger UI page loads its scripts from a CDN, so only its answer
# is checked, not its rendering.
API_LINKS = {"/api/v1/docs", "/api/v1/openapi.json", "/api/v1/health"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The platform on loopback, with the demo L4 dataset indexed and its two quicklooks drawn."""
    settings = migrated_settings(tmp_path_factory.mktemp("browser"))
    engine = make_engine(settings.database)
    try:
        serve_demo_l4(engine, tmp_path_factory)
        assert sorted(path.name for path in render_demo_quicklooks(settings, engine)) == sorted([MAP, SERIES])
    finally:
        engine.dispose()
    with serve_in_thread(settings) as running:
        yield running


def test_the_landing_page_loads_cleanly_and_its_links_answer(browser: Browser, site: RunningServer) -> None:
    with visit(browser, f"{site.url}/") as seen:
        assert seen.problems == []
        name = site.settings.platform_name
        assert name in seen.page.title()
        assert seen.page.locator("h1").inner_text().strip() == name

        links: list[str] = seen.page.eval_on_selector_all("a[href]", "links => links.map(link => link.href)")
        assert {link.removeprefix(site.url) for link in links} >= API_LINKS
        for link in links:
            assert link.startswith(f"{site.url}/"), f"the landing page links off the platform: {link}"
            assert seen.page.request.get(link).status == 200, link


def test_the_browser_decodes_both_quicklooks(browser: Browser, site: RunningServer) -> None:
    with visit(browser, f"{site.url}/") as seen:
        assert seen.problems == []
        images = seen.page.eval_on_selector_all(
            "#quicklooks img",
            """images => images.map(image => ({src: image.getAttribute('src'), alt: image.alt,
                complete: image.complete, width: image.naturalWidth, height: image.naturalHeight}))""",
        )
    assert sorted(image["src"] for image in images) == sorted(f"/quicklooks/{name}" for name in (MAP, SERIES))
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["alt"].strip(), f"{image['src']} has no alt text"
        on_disk = Image.open(quicklook_dir(site.settings) / Path(image["src"]).name)
        assert (image["width"], image["height"]) == on_disk.size  # the browser decoded the very file drawn


def test_a_screenshot_of_the_landing_page_is_a_real_picture(
    browser: Browser, site: RunningServer, tmp_path: Path
) -> None:
    shot = tmp_path / "landing.png"
    with visit(browser, f"{site.url}/") as seen:
        seen.page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    with Image.open(shot) as picture:
        assert picture.width == 1280 and picture.height > 800  # the whole page, quicklooks below the fold
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 100, "the screenshot is (nearly) blank"
