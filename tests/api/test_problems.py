"""Every error path answers the same problem+json shape, with the status of its class in the one table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Query

from nephelae import errors
from nephelae.api import create_app
from nephelae.api.problems import PROBLEM_MEDIA_TYPE, STATUS
from nephelae.config import Settings

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:nephelae:problem:{code}"
    assert body["title"] and body["detail"]
    assert "Traceback" not in body["detail"]
    return body


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, in-process, plus routes that fail in each way the platform can fail."""
    app = create_app(settings)
    _add_failing_routes(app)
    async with _client(app) as client:
        yield client


def _add_failing_routes(app: FastAPI) -> None:
    @app.get("/fail/{code}")
    def fail(code: str) -> None:
        raise next(cls for cls in errors.error_classes() if cls.code == code)(f"failure {code}")

    @app.get("/typed")
    def typed(limit: int = Query(ge=1)) -> int:
        return limit

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret internals /etc/passwd")


@pytest.mark.parametrize("cls", list(STATUS), ids=lambda cls: cls.code)
async def test_each_error_class_maps_to_its_status(client: httpx.AsyncClient, cls: type[errors.NephelaeError]) -> None:
    body = _assert_problem(await client.get(f"/fail/{cls.code}"), STATUS[cls], cls.code)
    assert body["detail"] == f"failure {cls.code}"
    assert body["title"] == cls.title


def test_every_error_class_has_a_status() -> None:
    """A new error class must be placed in the table (or inherit a place from its parent)."""
    for cls in errors.error_classes()[1:]:
        assert any(base in STATUS for base in cls.__mro__), cls


async def test_unauthenticated_asks_for_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/fail/unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/typed?limit=abc", 422, "invalid_request"),
        ("/typed?limit=0", 422, "invalid_request"),
        ("/typed", 422, "invalid_request"),
        ("/nowhere", 404, "not_found"),
        ("/api/v1/health/extra", 404, "not_found"),
    ],
)
async def test_framework_errors_are_problems(client: httpx.AsyncClient, path: str, status: int, code: str) -> None:
    body = _assert_problem(await client.get(path), status, code)
    if status == 422:
        assert "limit" in str(body["detail"])


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.put("/api/v1/health"), 405, "method_not_allowed")


async def test_unexpected_errors_hide_their_internals(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/crash"), 500, "internal_error")
    assert "passwd" not in str(body["detail"])


async def test_database_down_is_503(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    async with _client(create_app(settings)) as client:
        body = _assert_problem(await client.get("/api/v1/health"), 503, "unavailable")
    assert "cannot reach the database" in str(body["detail"])
