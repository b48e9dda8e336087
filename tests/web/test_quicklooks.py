"""The landing page shows the demo's quicklooks: PNGs `nephelae demo` drew into the home, served to anyone.

The page is public, so it serves only those files, by name: nothing else of the home, whatever the path says.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from nephelae.analysis.quicklooks import MAP, SERIES, quicklook_dir, render_demo_quicklooks
from nephelae.config import Settings
from tests.analysis.support import serve_demo_l4
from tests.support.server import serve_in_thread


def test_the_landing_page_shows_the_demo_quicklooks(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serve_in_thread(settings) as running:
        page = httpx.get(f"{running.url}/", timeout=10)
        assert page.status_code == 200 and "quicklooks" not in page.text  # none drawn yet: no empty section

    serve_demo_l4(engine, tmp_path_factory)
    written = render_demo_quicklooks(settings, engine)
    assert sorted(path.name for path in written) == sorted([MAP, SERIES])
    with serve_in_thread(settings) as running:
        page = httpx.get(f"{running.url}/", timeout=10)
        assert f'<img src="/quicklooks/{MAP}"' in page.text and f'<img src="/quicklooks/{SERIES}"' in page.text
        for name in (MAP, SERIES):
            picture = httpx.get(f"{running.url}/quicklooks/{name}", timeout=10)  # no token: public
            assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
            assert picture.content == (quicklook_dir(settings) / name).read_bytes()
            assert picture.content.startswith(b"\x89PNG") and len(picture.content) > 10_000


HOSTILE = [
    "secret.png",
    "..%2Fnephelae.db",
    "%2E%2E%2Fdemo-credentials.json",
    "..%2F..%2Fetc%2Fpasswd",
    ".sst-map.png.tmp",
]


def test_nothing_else_of_the_home_is_served(settings: Settings) -> None:
    quicklook_dir(settings).mkdir(parents=True, exist_ok=True)
    (quicklook_dir(settings) / "secret.png").write_bytes(b"\x89PNG not a quicklook")
    (settings.home / "demo-credentials.json").write_text('{"user": {"token": "secret"}}')
    with serve_in_thread(settings) as running:
        for path in HOSTILE:
            answer = httpx.get(f"{running.url}/quicklooks/{path}", timeout=10)
            assert answer.status_code == 404, path
            assert "token" not in answer.text and answer.headers["content-type"] == "application/problem+json"
