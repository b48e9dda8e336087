"""`create_app(settings)`: the whole HTTP surface, assembled from routers, dependencies and problem handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from nephelae import __version__
from nephelae.api.auth import install_access_control
from nephelae.api.problems import PROBLEM_RESPONSES, install_problem_handlers
from nephelae.api.routes import accounts, admin, analysis, campaigns, datasets, health
from nephelae.api.routes import files as workspace_files
from nephelae.api.stac import router as stac_router
from nephelae.campaigns.engine import CampaignEngine
from nephelae.config import Settings
from nephelae.db import make_engine, session_factory
from nephelae.web import pages

API_PREFIX = "/api/v1"


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI application for `settings`; the database must already be migrated (see `nephelae serve`)."""
    engine = make_engine(settings.database)
    campaign_engine = CampaignEngine(settings, engine) if settings.run_engine else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if campaign_engine is not None:
            campaign_engine.start()
        yield
        if campaign_engine is not None:
            await asyncio.to_thread(campaign_engine.stop)
        engine.dispose()

    app = FastAPI(
        title=f"{settings.platform_name} API",
        version=__version__,
        description=settings.platform_description,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        responses=PROBLEM_RESPONSES,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.campaign_engine = campaign_engine
    app.state.sessions = session_factory(engine)
    install_access_control(app, settings)
    install_problem_handlers(app)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(accounts.router, prefix=API_PREFIX)
    app.include_router(admin.router, prefix=API_PREFIX)
    app.include_router(stac_router)
    app.include_router(datasets.router, prefix=API_PREFIX)
    app.include_router(campaigns.router, prefix=API_PREFIX)
    app.include_router(analysis.router, prefix=API_PREFIX)
    app.include_router(workspace_files.router, prefix=API_PREFIX)
    app.include_router(workspace_files.runs_router, prefix=API_PREFIX)
    app.include_router(pages.router)
    return app
