"""The "cook your own climatology" examples (examples/climatology) run as real campaigns on a demo archive.

Daily COARE fluxes from the demo L4 SST and meteorology, then their monthly means, by the campaign engine on a
LocalCluster of two worker processes, with the specs read from the example files as a user submits them. The fluxes
are checked against pycoare called directly on the same inputs at a few cells, the means against numpy.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pycoare import coare_36
from pycoare.util import rhcalc
from sqlalchemy import Engine

from nephelae.accounts import Principal
from nephelae.accounts.projects import create_project
from nephelae.analysis.request import build_request
from nephelae.analysis.service import analyse
from nephelae.campaigns.engine import CampaignEngine
from nephelae.campaigns.service import get_campaign, progress, submit_campaign
from nephelae.campaigns.spec import parse_spec
from nephelae.catalog.datasets import add_dataset
from nephelae.catalog.indexer import index_dataset
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign
from nephelae.demo.archive import build_demo_archive
from tests.support.compliance import assert_cf_compliant

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "climatology"
PROJECT = "oceanheatflux"
DEMO = Principal(account_id=1, username="demo", role="user", projects=(PROJECT,), address="127.0.0.1")
START, DAYS = dt.date(2020, 1, 26), 10  # six days of January, four of February: two monthly means
FLUXES = (
    "surface_upward_latent_heat_flux",
    "surface_upward_sensible_heat_flux",
    "magnitude_of_surface_downward_stress",
)
FINAL = ("completed", "completed_with_failures", "failed", "cancelled")

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the engine's SQL is tested elsewhere


@dataclass
class Cookbook:
    settings: Settings
    sql: Engine
    archive: Path

    def run(self, example: str, timeout: float = 240) -> Campaign:
        """Submit an example spec as the demo scientist, and wait until the campaign is final."""
        spec = parse_spec((EXAMPLES / example).read_text(), filename=example)
        with session_factory(self.sql)() as session:
            campaign_id = submit_campaign(session, self.settings, DEMO, spec).id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with session_factory(self.sql)() as session:
                campaign = get_campaign(session, DEMO, campaign_id)
                if campaign.status in FINAL:
                    return campaign
            time.sleep(0.25)
        raise AssertionError(f"campaign {example} not finished in {timeout} s")

    def outputs(self, dataset: str) -> list[Path]:
        return sorted((self.settings.campaigns_dir / dataset).rglob("*.nc"))


@pytest.fixture
def cookbook(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[Cookbook]:
    archive = tmp_path / "archive"
    build_demo_archive(archive, start=START, days=DAYS)
    with session_factory(engine)() as session:
        create_project(session, PROJECT, actor="setup")
        for dataset in ("demo-l4-sst", "demo-surface-met"):
            add_dataset(session, dataset, str(archive / dataset), "**/*.nc", projects=[PROJECT], actor="setup")
    for dataset in ("demo-l4-sst", "demo-surface-met"):
        index_dataset(engine, dataset, workers=1)
    settings = settings.model_copy(update={"dask_workers": 2, "dask_threads_per_worker": 1})
    campaigns = CampaignEngine(settings, engine)
    campaigns.start()
    try:
        yield Cookbook(settings, engine, archive)
    finally:
        campaigns.stop()


def day_file(archive: Path, dataset: str, day: np.datetime64) -> Path:
    stamp = str(day.astype("datetime64[D]")).replace("-", "")
    return next((archive / dataset).rglob(f"{stamp}*.nc"))


def check_against_pycoare(archive: Path, output: Path) -> None:
    """At a few ocean cells of one day's output: COARE 3.6 by pycoare on the mean of the 2 x 2 SST cells (those
    with at most 15 % sea ice) and the met."""
    with xr.open_dataset(output) as fluxes:
        day = fluxes["time"].values[0]
        with (
            xr.open_dataset(day_file(archive, "demo-l4-sst", day)) as l4,
            xr.open_dataset(day_file(archive, "demo-surface-met", day)) as met,
        ):
            latent = fluxes[FLUXES[0]].values[0]
            rows, columns = np.nonzero(np.isfinite(latent))
            picks = np.random.default_rng(0).choice(rows.size, 6, replace=False)
            for i, j in zip(rows[picks], columns[picks], strict=True):
                cells = (0, slice(2 * i, 2 * i + 2), slice(2 * j, 2 * j + 2))
                ice = l4["sea_ice_fraction"].values[cells]
                block = np.where(ice > 0.15, np.nan, l4["analysed_sst"].values[cells])  # open water only
                ts = float(np.nanmean(block)) - 273.15
                ta = float(met["air_temperature"].values[0, i, j]) - 273.15
                q = float(met["specific_humidity"].values[0, i, j])
                rh = rhcalc(ta, 1015.0, q)  # pycoare's conversion: 0.1 % from heat_fluxes' exact inverse of qair
                coare = coare_36(
                    np.array([float(met["wind_speed"].values[0, i, j])]),
                    t=np.array([ta]),
                    rh=np.array([rh]),
                    ts=np.array([ts]),
                    lat=np.array([float(met["lat"].values[i])]),
                    zu=10,
                    zt=2,
                    zq=2,
                )
                expected = (coare.fluxes.hlb[0], coare.fluxes.hsb[0], coare.fluxes.tau[0])
                for name, value in zip(FLUXES, expected, strict=True):
                    np.testing.assert_allclose(fluxes[name].values[0, i, j], value, rtol=3e-3, atol=1e-6, err_msg=name)


# pycoare's own intermediate powers over cold water (its outputs stay finite), in the reference calls of this test.
@pytest.mark.filterwarnings("ignore:invalid value encountered in power:RuntimeWarning")
def test_daily_fluxes_then_their_monthly_means(cookbook: Cookbook) -> None:
    daily = cookbook.run("daily-fluxes.yaml")
    assert daily.status == "completed", progress(daily)
    assert daily.task_count == DAYS
    files = cookbook.outputs("demo-daily-fluxes")
    assert len(files) == DAYS
    with xr.open_dataset(files[0]) as first:
        assert set(FLUXES) <= set(first.data_vars) and first.sizes["lat"] == 360 and first.sizes["lon"] == 720
        assert first["surface_upward_latent_heat_flux"].attrs["units"] == "W m-2"
        assert first.attrs["nephelae_campaign"] == str(daily.id)
        assert (
            "demo-surface-met" in first.attrs["nephelae_input_granules"]
            or "met" in first.attrs["nephelae_input_granules"]
        )
    for output in (files[0], files[-1]):
        check_against_pycoare(cookbook.archive, output)
    assert_cf_compliant(files[0])

    monthly = cookbook.run("monthly-climatology.yaml")
    assert monthly.status == "completed", progress(monthly)
    assert monthly.task_count == 2
    with xr.open_mfdataset(files, combine="by_coords") as days:
        means = {month: days.sel(time=days.time.dt.month == month) for month in (1, 2)}
        for path in cookbook.outputs("demo-monthly-fluxes"):
            with xr.open_dataset(path) as result:
                month = int(result["time"].dt.month.values[0])
                selected = means[month]
                assert selected.sizes["time"] == (6 if month == 1 else 4)
                for name in FLUXES:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # land: all missing, NaN as wanted
                        expected = np.nanmean(selected[name].values, axis=0)
                    np.testing.assert_allclose(result[name].values[0], expected, rtol=1e-9, equal_nan=True)
                assert result["time_bnds"].values[0, 0] == selected["time_bnds"].values.min()
                assert result[FLUXES[0]].attrs["cell_methods"] == "time: mean"
            assert_cf_compliant(path)

    # The last step of the recipe: the month-of-the-year climatology of the monthly means, by the analysis service.
    request = build_request("climatology", "demo-monthly-fluxes", [FLUXES[0]], period="month")
    with session_factory(cookbook.sql)() as session:
        answer = analyse(session, DEMO, cookbook.settings, request, "netcdf")
    assert answer.path is not None
    try:
        with xr.open_dataset(answer.path) as climatology:
            assert climatology.sizes["month"] == 12
            for path in cookbook.outputs("demo-monthly-fluxes"):
                with xr.open_dataset(path) as result:
                    month = int(result["time"].dt.month.values[0])
                    expected = result[FLUXES[0]].values[0]
                    np.testing.assert_allclose(climatology[FLUXES[0]].sel(month=month), expected, equal_nan=True)
            assert np.isnan(climatology[FLUXES[0]].sel(month=7)).all()  # no July in the data
        assert_cf_compliant(answer.path)
    finally:
        answer.path.unlink(missing_ok=True)
