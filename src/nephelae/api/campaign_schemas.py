"""The wire shapes of campaigns and their tasks, as `/api/v1/campaigns` returns them.

A campaign carries its spec as submitted (canonical), its status, task counts and progress; a task its inputs, status,
attempts, timings, error and traceback, outputs, and the URL of its log. Datetimes are ISO 8601 in UTC.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from nephelae.campaigns.spec import MAX_SPEC_BYTES, CampaignSpec
from nephelae.db.models import Campaign, CampaignTask

CampaignStatus = Literal["queued", "running", "completed", "completed_with_failures", "failed", "cancelled"]
TaskStatus = Literal["pending", "running", "done", "failed", "cancelled"]


class TaskCounts(BaseModel):
    """How many of the campaign's planned tasks are in each state (`total` grows while planning goes on)."""

    pending: int
    running: int
    done: int
    failed: int
    cancelled: int
    total: int

    @classmethod
    def of(cls, campaign: Campaign) -> TaskCounts:
        return cls(
            pending=campaign.pending_count,
            running=campaign.running_count,
            done=campaign.done_count,
            failed=campaign.failed_count,
            cancelled=campaign.cancelled_count,
            total=campaign.task_count,
        )


class Timings(BaseModel):
    """How long the campaign has run, and an estimate of how long it still needs."""

    elapsed_seconds: float | None = Field(description="Since it started (until it finished); null before it starts.")
    remaining_seconds: float | None = Field(description="Estimated from the tasks finished so far; null if unknown.")


class CampaignInfo(BaseModel):
    """A campaign: what was asked, where it stands, and when it ran."""

    id: int
    name: str
    owner: str
    status: CampaignStatus
    spec: dict[str, Any] = Field(description="The spec as accepted, in its canonical form.")
    output_dataset: str = Field(description="The derived dataset the campaign writes.")
    counts: TaskCounts
    progress: float = Field(
        description="Fraction of the planned tasks finished (done, failed or cancelled), 0 to 1; 1 once ended."
    )
    planning_finished: bool = Field(description="False while tasks are still being planned: `total` may still grow.")
    follow: bool = Field(description="A standing campaign: granules indexed later become new tasks.")
    request: str | None = Field(description="A cancel or retry asked for and not yet carried out by the engine.")
    error: str | None = Field(description="Why the campaign failed, when it did.")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    timings: Timings

    @classmethod
    def of(cls, campaign: Campaign, progress: dict[str, Any]) -> CampaignInfo:
        """The campaign, with `progress` as the service's `progress(campaign)` computes it."""
        return cls(
            id=campaign.id,
            name=campaign.name,
            owner=campaign.owner,
            status=cast(CampaignStatus, campaign.status),
            spec=campaign.spec,
            output_dataset=campaign.output_dataset,
            counts=TaskCounts.of(campaign),
            progress=float(progress["fraction_done"]),
            planning_finished=campaign.planning_finished,
            follow=campaign.follow,
            request=campaign.request,
            error=campaign.error,
            created_at=campaign.created_at,
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
            timings=Timings(
                elapsed_seconds=progress["elapsed_seconds"], remaining_seconds=progress["remaining_seconds"]
            ),
        )


@dataclass(frozen=True)
class Roots:
    """Where a campaign's files live: tasks show paths relative to their dataset's root, as granule searches do.

    Nobody but an operator learns the server's paths; an owner finds an output among the granules of the output
    dataset by the same relative path.
    """

    inputs: dict[str, str]  # input name -> root of its dataset
    output: str

    def of_input(self, alias: str, path: str) -> str:
        return _relative(path, self.inputs.get(alias))

    def of_output(self, output: dict[str, Any]) -> dict[str, Any]:
        return output | {"path": _relative(str(output.get("path", "")), self.output)}


def _relative(path: str, root: str | None) -> str:
    prefix = (root or "").removeprefix("file://").rstrip("/") + "/"
    return path.removeprefix(prefix) if root else path


class TaskInfo(BaseModel):
    """One task of a campaign. `id` is its ordinal in the campaign (0, 1, ...), in planning order."""

    id: int = Field(description="The task's ordinal in its campaign.")
    label: str = Field(description="The primary granule's path, or the period (2020-01-31, 2020-01) of a group.")
    inputs: dict[str, list[str]] = Field(
        description="The task's input granules by input name: paths relative to the input dataset's root."
    )
    status: TaskStatus
    attempts: int
    error: str | None = Field(description="The processor's message when the last attempt failed.")
    traceback: str | None
    log: str | None = Field(description="URL of the task's log (text/plain); null before the task has run.")
    outputs: list[dict[str, Any]] = Field(
        description="Files written: `path` relative to the output dataset's root, `size` in bytes, `reused` when an "
        "earlier run had already written it."
    )
    worker: str | None = Field(description="The Dask worker that ran the last attempt.")
    duration: float | None = Field(description="Seconds the last attempt ran, once it has finished.")
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, task: CampaignTask, roots: Roots, log_url: str | None) -> TaskInfo:
        primary = next(iter(task.inputs), "")
        return cls(
            id=task.ordinal,
            label=roots.of_input(primary, task.label),
            inputs={alias: [roots.of_input(alias, path) for path in paths] for alias, paths in task.inputs.items()},
            status=cast(TaskStatus, task.status),
            attempts=task.attempts,
            error=task.error,
            traceback=task.traceback,
            log=log_url,
            outputs=[roots.of_output(output) for output in task.outputs or []],
            worker=task.worker,
            duration=_seconds(task.started_at, task.finished_at),
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return None if start is None or end is None else max(0.0, (end - start).total_seconds())


class Link(BaseModel):
    rel: str
    href: str


class TaskPage(BaseModel):
    """A page of tasks in ordinal order; follow the `next` link (or pass `next` as `after`) until it is null."""

    tasks: list[TaskInfo]
    next: int | None = Field(description="Pass as `after` to get the next page; null on the last page.")
    links: list[Link] = Field(description="`next`: the URL of the next page, when there is one.")


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` references written out, to stand alone inside the OpenAPI document."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(copy.deepcopy(definitions[reference.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        return [resolve(item) for item in node] if isinstance(node, list) else node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


SPEC_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
SPEC_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"A campaign spec (see the README), as JSON or as YAML text; at most {MAX_SPEC_BYTES} bytes.",
        "content": {
            "application/json": {"schema": _inlined(CampaignSpec.model_json_schema())},
            "application/yaml": {"schema": {"type": "string", "description": "The spec as a YAML document."}},
        },
    }
}
