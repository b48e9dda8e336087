"""The Python client of the Nephelae HTTP API, for notebooks, scripts and the CLI's user commands.

    from nephelae.client import Client

    with Client.open("https://nephelae.example.org", token) as nephelae:
        for granule in nephelae.granules("odyssea-l4-sst", bbox=(-80, 0, 0, 60), datetime="2020-01/2020-03",
                                         max_items=500):
            print(granule.path, granule.time_start)
        campaign = nephelae.submit_campaign(Path("sst-anomaly.yaml").read_text())
        campaign = nephelae.wait_campaign(campaign.id, on_progress=lambda c: print(c.status, c.progress))

It knows only the wire format of `/api/v1`. Connection failures and 502/503/504 answers are retried with backoff
(a POST only when it could not reach the server: it is never carried out twice);
every error answer is raised again as the `NephelaeError` class the server raised (`NotFound`, `PermissionDenied`,
`AuthenticationRequired`...), so `except NotFound:` works the same on both sides of the wire.
"""

from nephelae.client.core import MAX_PAGE_SIZE, Client
from nephelae.client.transport import response_error, server_root
from nephelae.client.wire import (
    BBox,
    BBoxLike,
    Campaign,
    CampaignTask,
    Dataset,
    DatetimeLike,
    Granule,
    bbox_param,
    datetime_param,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "BBox",
    "BBoxLike",
    "Campaign",
    "CampaignTask",
    "Client",
    "Dataset",
    "DatetimeLike",
    "Granule",
    "bbox_param",
    "datetime_param",
    "response_error",
    "server_root",
]
