"""The HTTP entry point: `create_app(settings)` builds the FastAPI application."""

from nephelae.api.app import create_app

__all__ = ["create_app"]
