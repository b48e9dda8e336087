"""The demo's quicklooks: a map and a time series of the demo L4 SST, drawn once by `nephelae demo` into the home.

The landing page is public, so it shows these files (written by the operator's own command, from the demo's own
dataset) rather than computing anything for anonymous visitors.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine

from nephelae.analysis.request import build_request
from nephelae.analysis.service import analyse
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Dataset

DEMO_DATASET = "demo-l4-sst"
DIRECTORY = "quicklooks"
MAP = "sst-map.png"
SERIES = "sst-timeseries.png"
NAMES = (MAP, SERIES)
SERIES_BOX = "-80,0,0,60"  # the North Atlantic: a seasonal cycle worth seeing


def quicklook_dir(settings: Settings) -> Path:
    return settings.home / DIRECTORY


def render_demo_quicklooks(settings: Settings, engine: Engine) -> list[Path]:
    """Draw the last day's SST map and the North Atlantic mean SST series of the demo L4 dataset into the home."""
    directory = quicklook_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    with session_factory(engine)() as session:
        dataset = session.get(Dataset, DEMO_DATASET)
        if dataset is None or dataset.time_end is None:
            return []
        last_day = (dataset.time_end - dt.timedelta(hours=12)).date().isoformat()
        drawn = {
            MAP: build_request("map", DEMO_DATASET, ["analysed_sst"], time=last_day),
            SERIES: build_request("timeseries", DEMO_DATASET, ["analysed_sst"], bbox=SERIES_BOX),
        }
        written = []
        for name, request in drawn.items():
            rendered = analyse(session, None, settings, request, "png")
            temporary = directory / f".{name}.tmp"
            temporary.write_bytes(rendered.content or b"")
            temporary.replace(directory / name)  # a visitor never sees half a picture
            written.append(directory / name)
    return written
