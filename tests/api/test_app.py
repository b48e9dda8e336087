"""The HTTP surface of the foundation, served by a real uvicorn on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from nephelae import __version__
from nephelae.api.problems import PROBLEM_MEDIA_TYPE
from nephelae.db import head_revision
from tests.support.server import RunningServer


def test_health_reports_the_database(server: RunningServer, database_url: str) -> None:
    response = httpx.get(f"{server.url}/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"] == {
        "backend": database_url.split(":")[0].split("+")[0],
        "revision": head_revision(),
        "up_to_date": True,
    }


def test_landing_page_is_html_that_says_how_to_connect(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "Nephelae" in page
    assert f"{server.url}/api/v1/accounts" in page  # how to register, with this server's address
    assert 'href="/api/v1/docs"' in page


def test_openapi_and_interactive_docs(server: RunningServer) -> None:
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/health" in spec["paths"]
    assert "Problem" in spec["components"]["schemas"]
    docs = httpx.get(f"{server.url}/api/v1/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/page", 404, "not_found"),
        ("GET", "/api/v1/nothing-here", 404, "not_found"),
        ("DELETE", "/api/v1/health", 405, "method_not_allowed"),
        ("POST", "/api/v1/openapi.json", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods_are_problems(
    server: RunningServer, method: str, path: str, status: int, code: str
) -> None:
    response = httpx.request(method, f"{server.url}{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["code"] == code
