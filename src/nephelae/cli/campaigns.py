"""`nephelae campaigns ...`: submit a processor over whole archives, follow it, read its logs, cancel or retry it.

Every command goes through the HTTP API with the Python client, like `nephelae datasets list` (see `user_client`).
`wait` (and `submit --wait`) ends with an exit status saying how the campaign ended, for scripts:

    0  completed: every task done
    3  completed_with_failures: some tasks failed (`nephelae campaigns logs ID`, then `retry ID`)
    4  failed or cancelled
    5  still running when --timeout ran out
    1  an error (`code: detail`), as for every command
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nephelae.campaigns.spec import parse_spec
from nephelae.cli.admin_home import note, print_table, say
from nephelae.cli.datasets import moment_text, user_client
from nephelae.cli.options import HomeOption
from nephelae.cli.output import JsonOption, error_console, print_error, print_json
from nephelae.client import Campaign, CampaignTask, Client
from nephelae.errors import InvalidInput

EXIT_COMPLETED = 0
EXIT_COMPLETED_WITH_FAILURES = 3
EXIT_FAILED = 4  # failed or cancelled
EXIT_TIMEOUT = 5
EXIT_STATUS = {"completed": EXIT_COMPLETED, "completed_with_failures": EXIT_COMPLETED_WITH_FAILURES}
DEFAULT_POLL = 2.0

CampaignArgument = Annotated[
    int, typer.Argument(metavar="ID", min=1, help="Campaign id, as `nephelae campaigns list` shows it.")
]
PollOption = Annotated[
    float, typer.Option("--poll", metavar="SECONDS", min=0.1, max=3600, help="Seconds between two looks.")
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", min=0, help="Give up waiting after this long (exit status 5)."),
]

campaigns_app = typer.Typer(
    help="Campaigns: run a processor over whole datasets on the platform's cluster (through the HTTP API).",
    no_args_is_help=True,
)


def read_spec(path: Path) -> str | dict[str, Any]:
    """The spec file's text (YAML) or data (a .json file), checked here so that errors name the file."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"spec file {path} does not exist; give the path of a campaign spec (YAML, JSON)") from None
    except OSError as error:
        raise InvalidInput(f"cannot read spec file {path}: {error.strerror}") from None
    parse_spec(text, filename=path.name)  # syntax and fields, offline; the server checks them again, and the rest
    document = text.decode("utf-8-sig")
    return dict(json.loads(document)) if path.name.endswith(".json") else document


@campaigns_app.command("submit")
def submit(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The campaign spec, a YAML (or .json) file.")],
    wait_for_it: Annotated[
        bool, typer.Option("--wait", help="Then wait for it to end, with a progress bar; exit status as `wait`.")
    ] = False,
    poll: PollOption = DEFAULT_POLL,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Submit a campaign from a spec file (see the README for the spec); prints its id."""
    document = read_spec(spec)
    with user_client(home) as client:
        campaign = client.submit_campaign(document)
        if not wait_for_it:
            _show_submitted(campaign, json_output)
            return
        if not json_output:
            note(f"Submitted campaign {campaign.id} ({campaign.name}); waiting for it to end.")
        _wait_and_exit(client, campaign.id, poll, None, json_output)


def _show_submitted(campaign: Campaign, json_output: bool) -> None:
    if json_output:
        print_json(campaign.wire)
        return
    say(f"Submitted campaign {campaign.id} ({campaign.name}): {campaign.status}, writing {campaign.output_dataset}.")
    say(f"Follow it with `nephelae campaigns wait {campaign.id}` or `nephelae campaigns status {campaign.id}`.")


@campaigns_app.command("list")
def list_campaigns(
    everyone: Annotated[bool, typer.Option("--all", help="Every account's campaigns (admins only).")] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """List your campaigns, newest first: status, tasks finished, output dataset."""
    with user_client(home) as client:
        found = client.campaigns(everyone=everyone)
    if json_output:
        print_json([campaign.wire for campaign in found])
        return
    rows = [(c.id, c.name, c.owner, c.status, _tally(c), c.output_dataset, moment_text(c.created_at)) for c in found]
    columns = ("id", "name", "owner", "status", "tasks", "output dataset", "created (UTC)")
    empty = "No campaigns; submit one with `nephelae campaigns submit SPEC.yaml`."
    print_table("Campaigns", columns, rows, empty=empty)


def _tally(campaign: Campaign) -> str:
    """`done+failed/total`, and the failures when there are some."""
    counts = campaign.counts
    text = f"{counts.get('done', 0) + counts.get('failed', 0)}/{counts.get('total', 0)}"
    return text + (f" ({counts['failed']} failed)" if counts.get("failed") else "")


@campaigns_app.command("status")
def status(campaign_id: CampaignArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Show one campaign: status, task counts, progress, timings, error."""
    with user_client(home) as client:
        campaign = client.campaign(campaign_id)
    if json_output:
        print_json(campaign.wire)
    else:
        print_table(f"Campaign {campaign.id}", ("field", "value"), _status_rows(campaign))


def _status_rows(campaign: Campaign) -> list[tuple[str, Any]]:
    counts = ", ".join(f"{value} {name}" for name, value in campaign.counts.items() if name != "total")
    request = campaign.wire.get("request")
    rows: list[tuple[str, Any]] = [
        ("name", campaign.name),
        ("owner", campaign.owner),
        ("status", campaign.status + (f" ({request} requested)" if request else "")),
        ("tasks", f"{campaign.counts.get('total', 0)}: {counts}"),
        ("progress", f"{campaign.progress:.0%}"),
        ("processor", _processor_text(campaign.wire.get("spec", {}).get("processor"))),
        ("output dataset", campaign.output_dataset),
        ("created (UTC)", moment_text(campaign.created_at)),
        ("started (UTC)", moment_text(campaign.started_at)),
        ("finished (UTC)", moment_text(campaign.finished_at)),
    ]
    return rows + ([("error", campaign.error)] if campaign.error else [])


def _processor_text(processor: Any) -> str:
    """`module:function` or `path.py:function` as written; a command line as its JSON list."""
    return processor if isinstance(processor, str) else json.dumps(processor)


@campaigns_app.command("wait")
def wait(
    campaign_id: CampaignArgument,
    poll: PollOption = DEFAULT_POLL,
    timeout: TimeoutOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Wait for a campaign to end, with a progress bar; the exit status says how it ended.

    0: completed; 3: completed with failed tasks; 4: failed or cancelled; 5: still running after --timeout.
    """
    with user_client(home) as client:
        _wait_and_exit(client, campaign_id, poll, timeout, json_output)


def _wait_and_exit(client: Client, campaign_id: int, poll: float, timeout: float | None, json_output: bool) -> None:
    with _progress_bar(enabled=not json_output) as show:
        try:
            campaign = client.wait_campaign(campaign_id, poll=poll, timeout=timeout, on_progress=show)
        except TimeoutError as error:
            print_error("timeout", f"{error}; wait again with `nephelae campaigns wait {campaign_id}`")
            raise typer.Exit(EXIT_TIMEOUT) from None
    if json_output:
        print_json(campaign.wire)
    raise typer.Exit(_report_end(campaign, quiet=json_output))


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[Campaign], None]]:
    """`show(campaign)`: a Rich bar of done+failed tasks out of the total, with the status; silent with --json."""
    if not enabled:
        yield lambda _campaign: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=error_console()) as progress:
        bar = progress.add_task("campaign", total=None)

        def show(campaign: Campaign) -> None:
            finished = campaign.counts.get("done", 0) + campaign.counts.get("failed", 0)
            description = f"campaign {campaign.id} {campaign.status}"
            progress.update(bar, description=description, completed=finished, total=campaign.counts.get("total"))

        yield show


def _report_end(campaign: Campaign, *, quiet: bool) -> int:
    """Say how the campaign ended (a `code: detail` line unless it completed); its exit status."""
    number, failed, total = campaign.id, campaign.counts.get("failed", 0), campaign.counts.get("total", 0)
    logs = f"`nephelae campaigns logs {number}` shows"
    if campaign.status == "completed":
        if not quiet:
            say(f"Campaign {number} completed: {total} tasks done; output dataset {campaign.output_dataset}.")
    elif campaign.status == "completed_with_failures":
        detail = f"campaign {number} ended with {failed} of {total} tasks failed; {logs} their errors"
        print_error(campaign.status, f"{detail}, `nephelae campaigns retry {number}` runs them again")
    elif campaign.status == "failed":
        print_error("failed", f"campaign {number} failed: {campaign.error or 'no reason given'}; {logs} more")
    else:
        print_error(campaign.status, f"campaign {number} was cancelled; done tasks' outputs are kept")
    return EXIT_STATUS.get(campaign.status, EXIT_FAILED)


@campaigns_app.command("logs")
def logs(
    campaign_id: CampaignArgument,
    task: Annotated[
        int | None, typer.Option("--task", metavar="T", min=0, help="Print this task's log (its id, from 0).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, help="At most N failed tasks.")] = 50,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a campaign's summary and its failed tasks' errors; or, with --task, the end of one task's log."""
    with user_client(home) as client:
        if task is not None:
            _print_task_log(client, campaign_id, task, json_output)
            return
        campaign = client.campaign(campaign_id)
        failed = list(islice(client.tasks(campaign_id, "failed", page_size=min(limit, 1000)), limit))
    if json_output:
        print_json({"campaign": campaign.wire, "failed_tasks": [item.wire for item in failed]})
        return
    print_table(f"Campaign {campaign.id}", ("field", "value"), _status_rows(campaign))
    _print_failures(campaign, failed)


def _print_task_log(client: Client, campaign_id: int, ordinal: int, json_output: bool) -> None:
    text = client.task_log(campaign_id, ordinal)
    if json_output:
        print_json({"campaign": campaign_id, "task": ordinal, "log": text})
    else:
        typer.echo(text, nl=not text.endswith("\n"))


def _print_failures(campaign: Campaign, failed: list[CampaignTask]) -> None:
    if not failed:
        say("No failed tasks.")
        return
    rows = [(item.id, item.label, item.attempts, item.error or "") for item in failed]
    print_table("Failed tasks", ("task", "input", "attempts", "error"), rows)
    total = campaign.counts.get("failed", len(failed))
    if total > len(failed):
        note(f"Showing {len(failed)} of {total} failed tasks; raise --limit to see more.")
    note(f"`nephelae campaigns logs {campaign.id} --task T` prints a task's log (with its traceback).")


@campaigns_app.command("cancel")
def cancel(campaign_id: CampaignArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Cancel a campaign: unfinished tasks are cancelled, the outputs of finished ones kept."""
    with user_client(home) as client:
        campaign = client.cancel_campaign(campaign_id)
    if json_output:
        print_json(campaign.wire)
    else:
        say(f"Asked campaign {campaign_id} to stop; `nephelae campaigns wait {campaign_id}` waits until it has.")


@campaigns_app.command("retry")
def retry(campaign_id: CampaignArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Run a campaign's failed tasks again (done ones are kept and not rerun)."""
    with user_client(home) as client:
        campaign = client.retry_campaign(campaign_id)
    if json_output:
        print_json(campaign.wire)
    else:
        failed = campaign.counts.get("failed", 0)
        say(f"Asked campaign {campaign_id} to run its {failed} failed tasks again.")
        say(f"`nephelae campaigns wait {campaign_id}` waits for them.")
