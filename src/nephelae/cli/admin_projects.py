"""`nephelae admin projects ...`: projects group accounts and the datasets they may read."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nephelae.accounts import projects
from nephelae.cli.admin_accounts import UserArgument
from nephelae.cli.admin_home import iso, open_session, operator_actor, print_table, say, timestamp
from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, print_json
from nephelae.db.models import Project

ProjectArgument = Annotated[
    str, typer.Argument(metavar="P", help="Project name: lower-case letters, digits, '-' or '_'.", show_default=False)
]

projects_app = typer.Typer(help="Projects: accounts sharing datasets and a workspace.", no_args_is_help=True)


def project_summary(project: Project) -> dict[str, Any]:
    """A project as scripts see it (`--json`)."""
    return {
        "name": project.name,
        "members": [account.username for account in project.members],
        "datasets": [link.dataset_id for link in project.datasets],
        "created_at": iso(project.created_at),
    }


def _report(summary: dict[str, Any], message: str, json_output: bool) -> None:
    if json_output:
        print_json(summary)
    else:
        say(message)


@projects_app.command("create")
def create_project(name: ProjectArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Create an empty project; then add members and datasets to it."""
    with open_session(settings_from(home)) as session:
        summary = project_summary(projects.create_project(session, name, actor=operator_actor()))
    _report(
        summary, f"Created project {name}; `nephelae admin projects add-member {name} USER` adds people.", json_output
    )


@projects_app.command("list")
def list_projects(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """List projects with their members and datasets."""
    with open_session(settings_from(home)) as session:
        found = projects.list_projects(session)
        summaries = [project_summary(project) for project in found]
    if json_output:
        print_json(summaries)
        return
    rows = [
        (summary["name"], ", ".join(summary["members"]), ", ".join(summary["datasets"]), timestamp(project.created_at))
        for project, summary in zip(found, summaries, strict=True)
    ]
    print_table("Projects", ("name", "members", "datasets", "created"), rows, empty="No projects.")


@projects_app.command("add-member")
def add_member(
    name: ProjectArgument, username: UserArgument, home: HomeOption = None, json_output: JsonOption = False
) -> None:
    """Make an account a member of a project: it reads the project's datasets."""
    with open_session(settings_from(home)) as session:
        summary = project_summary(projects.add_member(session, name, username, actor=operator_actor()))
    _report(summary, f"{username} is now a member of {name} (members: {', '.join(summary['members'])}).", json_output)


@projects_app.command("add-dataset")
def add_dataset(
    name: ProjectArgument,
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="Dataset id, as `nephelae datasets list` shows it.")
    ],
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Let a project's members read a dataset."""
    with open_session(settings_from(home)) as session:
        summary = project_summary(projects.add_dataset(session, name, dataset, actor=operator_actor()))
    _report(summary, f"Members of {name} may now read {dataset}.", json_output)
