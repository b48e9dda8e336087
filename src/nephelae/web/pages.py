"""Server-rendered pages (Jinja2). They read the app's settings and call services like any route."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from nephelae import __version__
from nephelae.config import Settings

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> HTMLResponse:
    """What this platform hosts and how to connect to it."""
    settings: Settings = request.app.state.settings
    context = {"settings": settings, "version": __version__, "url": str(request.base_url).rstrip("/")}
    return templates.TemplateResponse(request, "landing.html", context)
