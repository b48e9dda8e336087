"""Server-rendered pages (Jinja2). They read the app's settings and call services like any route."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from nephelae import __version__
from nephelae.analysis.quicklooks import NAMES as QUICKLOOKS
from nephelae.analysis.quicklooks import quicklook_dir
from nephelae.config import Settings

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> HTMLResponse:
    """What this platform hosts and how to connect to it."""
    settings: Settings = request.app.state.settings
    context = {"settings": settings, "version": __version__, "url": str(request.base_url).rstrip("/")}
    context["quicklooks"] = [name for name in QUICKLOOKS if (quicklook_dir(settings) / name).is_file()]
    return templates.TemplateResponse(request, "landing.html", context)


@router.get("/quicklooks/{name}")
def quicklook(name: str, request: Request) -> FileResponse:
    """A picture `nephelae demo` drew into the home: only those names, never another path."""
    settings: Settings = request.app.state.settings
    path = quicklook_dir(settings) / name
    if name not in QUICKLOOKS or not path.is_file():
        raise HTTPException(404, f"no quicklook {name[:64]!r}; `nephelae demo` draws {', '.join(QUICKLOOKS)}")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})
