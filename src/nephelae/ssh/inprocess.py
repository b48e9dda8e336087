"""The API in-process, as seen from the SSH client's address: how gateway commands reach the platform.

`InProcessTransport` is a synchronous httpx transport that hands each request to the ASGI application with the
SSH client's address as the peer, so that the whole API stack (tokens, account status, allowed ranges, audit)
applies exactly as over HTTP, without a listening socket and without believing any header.
`API_TRANSPORT` is where the gateway puts it for the CLI's user commands to pick up (see `cli.datasets.user_client`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from types import TracebackType

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp

API_TRANSPORT: ContextVar[httpx.BaseTransport | None] = ContextVar("nephelae_api_transport", default=None)


class InProcessTransport(httpx.BaseTransport):
    """Requests served by an ASGI app in this process, as if sent from `client` (address, port)."""

    def __init__(self, app: ASGIApp, client: tuple[str, int]) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=client)
        self._portal_context: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._portal_context.__enter__()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._portal.call(self._send, request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await self._asgi.handle_async_request(forwarded)
        content = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

    def close(self) -> None:
        """Stop the portal's event loop thread; closing again (httpx closes its transport too) does nothing."""
        if not self._closed:
            self._closed = True
            self._portal_context.__exit__(None, None, None)

    def __exit__(
        self,
        kind: type[BaseException] | None = None,
        error: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()
