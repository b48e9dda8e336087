"""A real uvicorn serving `create_app(settings)` on loopback, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from nephelae.api import create_app
from nephelae.config import Settings


@dataclass
class RunningServer:
    url: str
    app: FastAPI
    settings: Settings


@contextmanager
def serve_in_thread(settings: Settings, host: str = "127.0.0.1") -> Iterator[RunningServer]:
    """Serve on a free port of `host` until the block ends."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"host": host, "port": port})
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False)  # as `nephelae serve`
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(url=settings.url, app=app, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
