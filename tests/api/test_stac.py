"""`/stac`: a STAC API 1.0 over the catalog, used with pystac-client and checked against the spec's key requirements.

The catalog is filled with the services and granule rows as an indexing leaves them, in the database the real server
serves (SQLite and PostgreSQL): a project's dataset of swaths (one crossing the antimeridian, one over the pole with
a footprint, an old NetCDF-3 style file, two files sharing a name, an unreadable one) and a dataset in no project.
Expected results are worked out here from the rows inserted, not by the server's code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pystac
import pytest
from pystac.validation import validate_dict
from pystac_client import Client
from sqlalchemy import Engine

from nephelae.accounts import projects
from nephelae.catalog.datasets import add_dataset, get_dataset, refresh_summary
from nephelae.db import session_factory
from nephelae.db.models import Granule
from tests.api.support import SECOND_ADDRESS, People, assert_problem, bearer, client_from
from tests.support.server import RunningServer

PROJECT = "oceanheatflux"
SWATHS = "sst-swaths"  # in the project
MET = "met-reanalysis"  # in no project: operators only
DAY0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
VARIABLES = [
    {
        "name": "sea_surface_temperature",
        "dims": ["time", "nj", "ni"],
        "dtype": "int16",
        "units": "kelvin",
        "standard_name": "sea_surface_skin_temperature",
    }
]
L2P = {"platform": "DEMOSAT-1", "sensor": "DEMORAD", "processing_level": "L2P"}
POLAR_FOOTPRINT = {
    "type": "Polygon",
    "coordinates": [[[-180.0, 62.0], [180.0, 62.0], [180.0, 90.0], [-180.0, 90.0], [-180.0, 62.0]]],
}


@dataclass(frozen=True)
class Row:
    """A granule inserted, and the Item id it must get."""

    item_id: str
    path: str
    start: dt.datetime | None
    end: dt.datetime | None
    box: tuple[float, float, float, float] | None
    status: str = "ok"
    attributes: dict[str, Any] | None = None
    footprint: dict[str, Any] | None = None


SWATH_ROWS = [
    # An old NetCDF-3 file: one instant, no global attributes worth reading.
    Row("sst_19991231", "legacy/sst_19991231.nc", DAY0 - 12 * HOUR, DAY0 - 12 * HOUR, (0.0, 0.0, 10.0, 10.0)),
    Row(
        "20200101-atlantic",
        "2020/001/20200101-atlantic.nc",
        DAY0,
        DAY0 + HOUR,
        (-60.0, 10.0, -20.0, 50.0),
        attributes=L2P,
    ),
    Row(
        "20200101-dateline",
        "2020/001/20200101-dateline.nc",
        DAY0 + 2 * HOUR,
        DAY0 + 3 * HOUR,
        (170.0, -20.0, -170.0, 20.0),
    ),
    Row(
        "20200101-arctic",
        "2020/001/20200101-arctic.nc",
        DAY0 + 4 * HOUR,
        DAY0 + 5 * HOUR,
        (-180.0, 62.0, 180.0, 90.0),
        footprint=POLAR_FOOTPRINT,
    ),
    # Two files with the same name: each is named by its path.
    Row("a_dup.nc", "a/dup.nc", DAY0 + 6 * HOUR, DAY0 + 7 * HOUR, (-10.0, -10.0, 10.0, 10.0)),
    Row("b_dup.nc", "b/dup.nc", DAY0 + 6 * HOUR, DAY0 + 7 * HOUR, (100.0, -10.0, 120.0, 10.0)),
    *(
        Row(
            f"2020010{day}-indian",
            f"2020/00{day}/2020010{day}-indian.h5",
            DAY0 + (day - 1) * 24 * HOUR,
            DAY0 + (day - 1) * 24 * HOUR + HOUR,
            (40.0, -40.0, 100.0, 20.0),
        )
        for day in range(2, 8)
    ),
    Row("broken", "2020/009/broken.nc", None, None, None, status="unreadable"),
]
MET_ROWS = [
    Row(
        f"met-2020010{day}",
        f"2020/met-2020010{day}.nc",
        DAY0 + (day - 1) * 24 * HOUR,
        DAY0 + day * 24 * HOUR,
        (-180.0, -90.0, 180.0, 90.0),
    )
    for day in range(1, 4)
]


@dataclass(frozen=True)
class Stac:
    url: str
    user: str  # alice, member of the project
    admin: str
    archive: Path

    def client(self, token: str | None = None) -> Client:
        return Client.open(f"{self.url}/stac", headers=bearer(token or self.user))

    def get(self, path: str, auth: str | None = None, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=bearer(auth or self.user), timeout=10)

    def post(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=bearer(token or self.user), timeout=10)


@pytest.fixture
def stac(server: RunningServer, people: People, engine: Engine, tmp_path: Path) -> Stac:
    user, admin = people.account("alice"), people.admin()
    archive = tmp_path / "archive"
    with session_factory(engine)() as session:
        projects.create_project(session, PROJECT, actor="setup")
        projects.add_member(session, PROJECT, "alice", actor="setup")
        add_dataset(
            session,
            SWATHS,
            str(archive / SWATHS),
            "**/*.nc",
            title="SST swaths",
            description="Demo L2P swaths.",
            license="CC-BY-4.0",
            projects=[PROJECT],
        )
        add_dataset(session, MET, str(archive / MET), "**/*.nc", title="Surface meteorology")
        for dataset_id, rows in ((SWATHS, SWATH_ROWS), (MET, MET_ROWS)):
            session.add_all(_granule(dataset_id, number, row) for number, row in enumerate(rows))
            session.commit()
            refresh_summary(session, get_dataset(session, dataset_id))
    return Stac(server.url, user, admin, archive)


def _granule(dataset_id: str, number: int, row: Row) -> Granule:
    west, south, east, north = row.box or (None, None, None, None)
    return Granule(
        dataset_id=dataset_id, path=row.path, size=1000 + number, mtime_ns=0, status=row.status,
        time_start=row.start, time_end=row.end, west=west, south=south, east=east, north=north,
        footprint=row.footprint, variables=VARIABLES, attributes=row.attributes or {},
    )  # fmt: skip


def expected(
    rows: list[Row],
    bbox: tuple[float, float, float, float] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[str]:
    """Item ids of the readable rows meeting the box and the closed interval, in (start time, insertion) order."""
    found = [
        row for row in rows
        if row.status == "ok" and row.start and row.end and row.box
        and (start is None or row.end >= start) and (end is None or row.start <= end)
        and (bbox is None or _boxes_meet(row.box, bbox))
    ]  # fmt: skip
    return [row.item_id for row in sorted(found, key=lambda row: (row.start, rows.index(row)))]


def _boxes_meet(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    def parts(w: float, s: float, e: float, n: float) -> list[tuple[float, float, float, float]]:
        return [(w, s, e, n)] if w <= e else [(w, s, 180.0, n), (-180.0, s, e, n)]

    return any(
        aw <= be and bw <= ae and as_ <= bn and bs <= an
        for aw, as_, ae, an in parts(*a)
        for bw, bs, be, bn in parts(*b)
    )


# pystac-client against the server.


def test_pystac_client_pages_through_searches(stac: Stac) -> None:
    client = stac.client()
    assert [collection.id for collection in client.get_collections()] == [SWATHS]
    for method in ("GET", "POST"):
        search = client.search(collections=[SWATHS], limit=2, method=method)
        pages = list(search.pages_as_dicts())
        assert len(pages) >= 6  # 12 readable items, two a page
        assert [item["id"] for page in pages for item in page["features"]] == expected(SWATH_ROWS)
    dateline = (160.0, -30.0, -160.0, 30.0)
    for method in ("GET", "POST"):
        crossing = client.search(bbox=list(dateline), limit=1, method=method)  # every readable collection
        assert [item.id for item in crossing.items()] == expected(SWATH_ROWS, bbox=dateline) == ["20200101-dateline"]
    since = client.search(collections=[SWATHS], datetime="2020-01-01/..", limit=3, method="POST")
    assert [item.id for item in since.items()] == expected(SWATH_ROWS, start=DAY0)
    assert "sst_19991231" not in expected(SWATH_ROWS, start=DAY0)
    window = (DAY0 + 2 * HOUR, DAY0 + 3 * 24 * HOUR)
    africa = (-20.0, -45.0, 60.0, 15.0)
    both = client.search(bbox=list(africa), datetime=window, limit=1, method="GET")
    assert [item.id for item in both.items()] == expected(SWATH_ROWS, africa, *window)
    assert [item.id for item in client.search(limit=4, max_items=5).items()] == expected(SWATH_ROWS)[:5]


def test_pystac_client_finds_by_ids_and_geometry(stac: Stac) -> None:
    client = stac.client()
    by_ids = client.search(ids=["b_dup.nc", "sst_19991231", "no-such-item"], method="POST")
    assert [item.id for item in by_ids.items()] == ["sst_19991231", "b_dup.nc"]
    elsewhere = client.search(ids=["sst_19991231"], bbox=[100, 0, 101, 1], method="GET")
    assert list(elsewhere.items()) == []  # ids and the other filters all apply (STAC API 1.0)
    near_dateline = {"type": "Polygon", "coordinates": [[[175, -5], [185, -5], [185, 5], [175, 5], [175, -5]]]}
    assert [item.id for item in client.search(intersects=near_dateline).items()] == ["20200101-dateline"]
    collection = client.get_collection(SWATHS)
    assert collection.extent.spatial.bboxes == [[-180.0, -40.0, 180.0, 90.0]]  # a crossing granule: the whole band
    assert collection.extent.temporal.intervals[0][0] == DAY0 - 12 * HOUR
    assert collection.license == "CC-BY-4.0"
    assert collection.keywords == ["sea_surface_skin_temperature"]
    item = collection.get_item("20200101-atlantic")
    assert item is not None
    assert item.common_metadata.platform == "DEMOSAT-1"
    assert item.common_metadata.instruments == ["DEMORAD"]


# The shape of what is returned.


def test_items_are_stac_with_geometry_time_and_asset(stac: Stac) -> None:
    items = f"/stac/collections/{SWATHS}/items"
    dateline = stac.get(f"{items}/20200101-dateline")
    assert dateline.headers["content-type"] == "application/geo+json"
    body = dateline.json()
    assert body["geometry"]["type"] == "MultiPolygon"  # split at the antimeridian (RFC 7946 3.1.9)
    west_half, east_half = body["geometry"]["coordinates"]
    assert {x for x, _ in west_half[0]} == {170.0, 180.0}
    assert {x for x, _ in east_half[0]} == {-180.0, -170.0}
    assert body["bbox"] == [170.0, -20.0, -170.0, 20.0]
    assert body["properties"]["start_datetime"] == "2020-01-01T02:00:00Z"
    assert body["properties"]["end_datetime"] == "2020-01-01T03:00:00Z"
    assert body["properties"]["datetime"] is None
    assert {link["rel"] for link in body["links"]} >= {"self", "root", "parent", "collection"}
    asset = body["assets"]["data"]
    assert asset["roles"] == ["data"]
    assert asset["type"] == "application/netcdf"
    assert asset["href"] == (stac.archive / SWATHS / "2020/001/20200101-dateline.nc").as_uri()
    assert asset["nephelae:path"] == "2020/001/20200101-dateline.nc"
    assert body["properties"]["nephelae:variables"][0]["name"] == "sea_surface_temperature"

    arctic = stac.get(f"{items}/20200101-arctic").json()
    assert arctic["geometry"] == POLAR_FOOTPRINT
    legacy = stac.get(f"{items}/sst_19991231").json()
    assert legacy["properties"]["datetime"] == "2019-12-31T12:00:00Z"
    assert "platform" not in legacy["properties"]
    atlantic = stac.get(f"{items}/20200101-atlantic").json()
    assert atlantic["properties"]["processing:level"] == "L2P"
    assert stac.get(f"{items}/20200102-indian").json()["assets"]["data"]["type"] == "application/x-hdf5"
    for body in (dateline.json(), arctic, legacy, atlantic):
        # pystac ships the core schemas; the extensions' (file, processing) would come from the network.
        validate_dict(body, pystac.STACObjectType.ITEM, extensions=[])
        assert pystac.Item.from_dict(body).to_dict(transform_hrefs=False) == body
    assert_problem(stac.get(f"{items}/broken"), 404, "not_found")  # unreadable granules are not items
    assert_problem(stac.get(f"{items}/dup"), 404, "not_found")


def test_landing_page_conformance_and_collections_follow_the_spec(stac: Stac) -> None:
    for path in ("/stac", "/stac/"):
        landing = stac.get(path)
        assert landing.headers["content-type"] == "application/json"
        body = landing.json()
        rels = {link["rel"]: link for link in body["links"]}
        assert set(rels) >= {"self", "root", "conformance", "data", "search", "service-desc", "service-doc", "child"}
        searches = {link["method"] for link in body["links"] if link["rel"] == "search"}
        assert searches == {"GET", "POST"}
        assert [link["href"] for link in body["links"] if link["rel"] == "child"] == [
            f"{stac.url}/stac/collections/{SWATHS}"
        ]
        validate_dict(body, pystac.STACObjectType.CATALOG, extensions=[])
    classes = set(body["conformsTo"])
    assert classes == set(stac.get("/stac/conformance").json()["conformsTo"])
    assert {f"https://api.stacspec.org/v1.0.0/{name}" for name in ("core", "collections", "ogcapi-features")} < classes
    assert "https://api.stacspec.org/v1.0.0/item-search" in classes
    ogc = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
    assert {ogc + name for name in ("core", "geojson")} < classes
    assert ogc + "oas30" not in classes  # our OpenAPI document is 3.1
    openapi = httpx.get(rels["service-desc"]["href"])
    assert openapi.status_code == 200
    assert openapi.headers["content-type"] == rels["service-desc"]["type"]
    assert "/stac/search" in openapi.json()["paths"]
    collections = stac.get("/stac/collections").json()
    assert {link["rel"] for link in collections["links"]} >= {"self", "root"}
    (collection,) = collections["collections"]
    validate_dict(collection, pystac.STACObjectType.COLLECTION, extensions=[])
    assert {link["rel"]: link["type"] for link in collection["links"]}["items"] == "application/geo+json"


def test_item_collections_page_with_next_links(stac: Stac) -> None:
    page = stac.get(f"/stac/collections/{SWATHS}/items", limit=4, datetime="2020-01-01T00:00:00Z/..")
    assert page.headers["content-type"] == "application/geo+json"
    body = page.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == len(body["features"]) == 4
    (next_link,) = [link for link in body["links"] if link["rel"] == "next"]
    assert next_link["type"] == "application/geo+json"
    ids = [feature["id"] for feature in body["features"]]
    while next_link:
        body = httpx.get(next_link["href"], headers=bearer(stac.user)).json()
        ids += [feature["id"] for feature in body["features"]]
        next_link = next((link for link in body["links"] if link["rel"] == "next"), None)
    assert ids == expected(SWATH_ROWS, start=DAY0)

    first = stac.post("/stac/search", {"collections": [SWATHS], "limit": 3, "bbox": [-180, -90, 180, 90]}).json()
    (next_post,) = [link for link in first["links"] if link["rel"] == "next"]
    assert next_post["method"] == "POST"
    assert next_post["href"] == f"{stac.url}/stac/search"
    assert next_post["body"]["collections"] == [SWATHS]
    assert next_post["body"]["bbox"] == [-180, -90, 180, 90]
    second = stac.post("/stac/search", next_post["body"]).json()
    assert [f["id"] for f in first["features"] + second["features"]] == expected(SWATH_ROWS)[:6]


BAD_SEARCH_PARAMETERS = [
    {"bbox": "[100.0, 0.0, 105.0, 1.0]"},
    {"bbox": "100,1,105,0"},
    {"bbox": "0,0,1"},
    {"bbox": "0,0,0,1,1"},
    {"datetime": "1985-04-12"},
    {"datetime": "1985-12-12T23:20:50.52"},
    {"datetime": "../.."},
    {"datetime": "/"},
    {"datetime": "1985-04-12T23:20:50,52Z"},
    {"datetime": "1985-13-12T23:20:50.52Z"},
    {"datetime": "1986-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z"},
    {"limit": "0"},
    {"limit": "-1"},
    {"limit": "ten"},
    {"bbox": "0,0,1,1", "intersects": '{"type": "Point", "coordinates": [0, 0]}'},
    {"intersects": '{"type": "Circle"}'},
    {"token": "not-a-token"},
    {"sortby": "datetime"},
]


def test_bad_search_parameters_are_400_problems(stac: Stac) -> None:
    for params in BAD_SEARCH_PARAMETERS:
        assert_problem(stac.get("/stac/search", **params), 400, "invalid_input")


def test_search_bodies_and_limits(stac: Stac) -> None:
    for body in ({"bbox": "100.0, 0.0, 105.0, 1.0"}, {"limit": -1}, {"fields": {}}, [1, 2]):
        assert_problem(stac.post("/stac/search", body), 400, "invalid_input")
    bad_json = httpx.post(f"{stac.url}/stac/search", content=b"{", headers=bearer(stac.user))
    assert_problem(bad_json, 400, "invalid_input")
    for limit in ("1", "100000"):  # above the maximum is clamped, as OGC API Features allows
        assert stac.get("/stac/search", limit=limit).status_code == 200
    for datetime in ("1985-04-12t23:20:50.000z", "/2020-01-01T00:00:00Z", "2019-12-31T12:00:00+00:00"):
        assert stac.get("/stac/search", datetime=datetime).status_code == 200
    assert [f["id"] for f in stac.post("/stac/search", None).json()["features"]] == expected(SWATH_ROWS)[:10]


# Access: the rules of /api/v1.


def test_stac_has_the_access_rules_of_the_api(stac: Stac, people: People) -> None:
    for path in ("/stac", "/stac/conformance", "/stac/collections", "/stac/search"):
        assert_problem(httpx.get(f"{stac.url}{path}"), 401, "unauthenticated")
    with client_from(SECOND_ADDRESS, stac.url) as elsewhere:
        refused = elsewhere.get("/stac/search", headers=bearer(stac.user))
        assert "IP 127.0.0.2 is not in the allowed ranges" in assert_problem(refused, 403, "forbidden")
    pending = people.account("pat", status="pending")
    assert "pending approval" in assert_problem(stac.get("/stac", pending), 403, "forbidden")

    detail = assert_problem(stac.get(f"/stac/collections/{MET}"), 403, "forbidden")
    assert f"no access to dataset {MET}" in detail
    assert_problem(stac.get(f"/stac/collections/{MET}/items"), 403, "forbidden")
    assert_problem(stac.get(f"/stac/collections/{MET}/items/met-20200101"), 403, "forbidden")
    assert_problem(stac.get("/stac/search", collections=f"{SWATHS},{MET}"), 403, "forbidden")
    assert_problem(stac.post("/stac/search", {"collections": [MET]}), 403, "forbidden")
    assert_problem(stac.get("/stac/search", collections="no-such-dataset"), 404, "not_found")

    admin = stac.client(stac.admin)
    assert [collection.id for collection in admin.get_collections()] == [MET, SWATHS]
    everything = [item.id for item in admin.search(limit=5).items()]
    assert everything == expected(MET_ROWS) + expected(SWATH_ROWS)  # collection by collection, in id order
