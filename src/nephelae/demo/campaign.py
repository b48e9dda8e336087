"""A finished example campaign for the demo: monthly means of the demo L4 SST, by the demo scientist."""

from __future__ import annotations

import time

from sqlalchemy import Engine, select

from nephelae.accounts import principal_for
from nephelae.accounts.registry import get_account
from nephelae.campaigns.engine import CampaignEngine
from nephelae.campaigns.service import submit_campaign
from nephelae.campaigns.spec import validate_spec
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign
from nephelae.errors import InternalError

NAME = "demo-monthly-sst"
FINAL = ("completed", "completed_with_failures", "failed", "cancelled")
SPEC = {
    "name": NAME,
    "inputs": {"sst": {"dataset": "demo-l4-sst"}},
    "group_by": "month",
    "processor": "nephelae.processors:monthly_mean",
    "parameters": {"variables": ["analysed_sst"]},
    "output": {"dataset": "demo-monthly-sst", "format": "netcdf"},
    "retries": 1,
}


def run_example_campaign(settings: Settings, sql_engine: Engine, username: str, timeout: float = 600) -> Campaign:
    """Submit the example campaign as `username` unless it exists, and run the engine until it is finished."""
    sessions = session_factory(sql_engine)
    with sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.name == NAME, Campaign.owner == username))
        if campaign is None:
            principal = principal_for(session, get_account(session, username), "127.0.0.1")
            campaign = submit_campaign(session, settings, principal, validate_spec(SPEC, source="demo campaign"))
        if campaign.status in FINAL:
            return campaign
        campaign_id = campaign.id
    engine = CampaignEngine(settings, sql_engine)
    engine.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sessions() as session:
                campaign = session.get(Campaign, campaign_id)
                if campaign is not None and campaign.status in FINAL:
                    return campaign
            time.sleep(0.5)
    finally:
        engine.stop()
    raise InternalError(f"the demo campaign {campaign_id} did not finish in {timeout:.0f} s")
