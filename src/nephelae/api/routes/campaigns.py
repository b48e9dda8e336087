"""`/api/v1/campaigns`: submit a processor over whole archives, follow it, read its tasks' logs, cancel or retry it.

A spec comes as JSON (`application/json`) or as YAML text (`application/yaml`) and goes through the one narrow door
of `nephelae.campaigns.spec`: every faulty field is named in one 400. The service then checks what needs the
database and the workspace (datasets exist and are readable, the script exists, the output is the submitter's).
Campaigns are their owner's: anyone else gets a 404, as if there were none; admins see every campaign.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session
from starlette.datastructures import URL
from starlette.exceptions import HTTPException

from nephelae.api.auth import Authenticated
from nephelae.api.campaign_schemas import (
    SPEC_MEDIA_TYPES,
    SPEC_REQUEST_BODY,
    CampaignInfo,
    Link,
    Roots,
    TaskInfo,
    TaskPage,
    TaskStatus,
)
from nephelae.api.deps import SessionDep, SettingsDep
from nephelae.campaigns import service
from nephelae.campaigns.spec import MAX_SPEC_BYTES, CampaignSpec, parse_spec, validate_spec
from nephelae.config import Settings
from nephelae.db.models import Campaign, CampaignTask, Dataset
from nephelae.errors import InvalidInput

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

MAX_TASKS_PAGE = 1000
DEFAULT_LOG_TAIL = 65_536
MAX_LOG_TAIL = 4 * 1024 * 1024
CampaignId = Annotated[int, Path(ge=1, description="The campaign's id.")]
Ordinal = Annotated[int, Path(ge=0, description="The task's id: its ordinal in the campaign.")]


async def submitted_spec(request: Request) -> CampaignSpec:
    """The request body as a checked spec: JSON, or YAML text; anything else is a 415."""
    media_type = request.headers.get("content-type", "application/json").partition(";")[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if not is_json and media_type not in SPEC_MEDIA_TYPES:
        raise HTTPException(415, f"send the spec as application/json or application/yaml, not {media_type}")
    body = await request.body()
    if not is_json:
        return parse_spec(body, filename="request body")
    if len(body) > MAX_SPEC_BYTES:
        raise InvalidInput(f"request body is larger than {MAX_SPEC_BYTES // 1024} kB; a campaign spec is short")
    try:
        data = json.loads(body, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as error:
        raise InvalidInput(f"request body is not valid JSON: {error}") from None
    return validate_spec(data, source="request body")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key repeats (which value would win is anyone's guess)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen.add(key)
    return dict(pairs)


SubmittedSpec = Annotated[CampaignSpec, Depends(submitted_spec)]


def _info(campaign: Campaign) -> CampaignInfo:
    return CampaignInfo.of(campaign, service.progress(campaign))


@router.post("", summary="Submit a campaign", status_code=201, openapi_extra=SPEC_REQUEST_BODY)
def submit_campaign(
    principal: Authenticated,  # first: who is asking is settled before their body is read
    session: SessionDep,
    settings: SettingsDep,
    spec: SubmittedSpec,
    request: Request,
    response: Response,
) -> CampaignInfo:
    """Queue a campaign; 201 with the campaign and its URL in `Location`.

    400 names every faulty field of the spec; 404 or 403 an input dataset that does not exist or that the caller may
    not read; 409 an output dataset that exists and is someone else's.
    """
    campaign = service.submit_campaign(session, settings, principal, spec)
    response.headers["Location"] = _public_url(settings, request.url_for("show_campaign", campaign_id=campaign.id))
    return _info(campaign)


@router.get("", summary="List campaigns")
def list_campaigns(
    principal: Authenticated,
    session: SessionDep,
    everyone: Annotated[bool, Query(alias="all", description="Every account's campaigns (admins only).")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> list[CampaignInfo]:
    """The caller's campaigns, newest first; with `all=true`, an admin sees everyone's."""
    return [_info(campaign) for campaign in service.list_campaigns(session, principal, everyone=everyone, limit=limit)]


@router.get("/{campaign_id}", summary="Show a campaign")
def show_campaign(campaign_id: CampaignId, principal: Authenticated, session: SessionDep) -> CampaignInfo:
    """One campaign: status, counts, progress, timings; 404 if there is none or it is someone else's."""
    return _info(service.get_campaign(session, principal, campaign_id))


@router.get("/{campaign_id}/tasks", summary="List a campaign's tasks")
def list_campaign_tasks(
    campaign_id: CampaignId,
    principal: Authenticated,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    status: Annotated[TaskStatus | None, Query(description="Only the tasks in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TASKS_PAGE, description="Tasks per page.")] = 100,
    after: Annotated[int | None, Query(ge=0, description="`next` of the previous page: tasks after this id.")] = None,
) -> TaskPage:
    """The campaign's tasks in id (ordinal) order, a page at a time: inputs, status, attempts, error, log, outputs."""
    roots = _roots(session, service.get_campaign(session, principal, campaign_id))
    found = service.list_tasks(session, principal, campaign_id, status=status, limit=limit + 1, after=after)
    tasks, more = found[:limit], len(found) > limit
    page = [TaskInfo.of(task, roots, _log_url(request, settings, task)) for task in tasks]
    if not more:
        return TaskPage(tasks=page, next=None, links=[])
    last = tasks[-1].ordinal
    next_url = _public_url(settings, request.url.include_query_params(after=last))
    return TaskPage(tasks=page, next=last, links=[Link(rel="next", href=next_url)])


def _roots(session: Session, campaign: Campaign) -> Roots:
    """The roots of the campaign's datasets (those still registered), to show task paths relative to them."""

    def root(dataset_id: str) -> str:
        dataset = session.get(Dataset, dataset_id)
        return dataset.root if dataset is not None else ""

    inputs = {alias: root(str(item.get("dataset"))) for alias, item in campaign.spec.get("inputs", {}).items()}
    return Roots(inputs=inputs, output=root(campaign.output_dataset))


def _log_url(request: Request, settings: Settings, task: CampaignTask) -> str | None:
    if not task.log_path:
        return None
    return _public_url(settings, request.url_for("read_task_log", campaign_id=task.campaign_id, ordinal=task.ordinal))


@router.get(
    "/{campaign_id}/tasks/{ordinal}/log",
    summary="Read a task's log",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "The end of the log."}},
)
def read_task_log(
    campaign_id: CampaignId,
    ordinal: Ordinal,
    principal: Authenticated,
    session: SessionDep,
    tail: Annotated[int, Query(ge=1, le=MAX_LOG_TAIL, description="At most this many bytes, from the end.")] = (
        DEFAULT_LOG_TAIL
    ),
) -> PlainTextResponse:
    """The end of one task's log: the processor's output, then its error and traceback if it failed."""
    text = service.task_log(session, principal, campaign_id, ordinal, tail_bytes=tail)
    return PlainTextResponse(text)


@router.post("/{campaign_id}/cancel", summary="Cancel a campaign", status_code=202)
def cancel_campaign(campaign_id: CampaignId, principal: Authenticated, session: SessionDep) -> CampaignInfo:
    """Ask the engine to stop the campaign: unfinished tasks are cancelled, finished outputs kept; 409 if it is over."""
    return _info(service.request_cancel(session, principal, campaign_id))


@router.post("/{campaign_id}/retry", summary="Retry a campaign's failed tasks", status_code=202)
def retry_campaign(campaign_id: CampaignId, principal: Authenticated, session: SessionDep) -> CampaignInfo:
    """Ask the engine to run the failed tasks again (done ones are kept); 409 if there is nothing to retry."""
    return _info(service.request_retry(session, principal, campaign_id))


def _public_url(settings: Settings, url: URL) -> str:
    """A URL of this server at the address users reach it (behind a proxy too)."""
    if settings.public_url:
        return f"{settings.public_url.rstrip('/')}{url.path}" + (f"?{url.query}" if url.query else "")
    return str(url)
