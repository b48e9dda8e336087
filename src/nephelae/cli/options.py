"""Options shared by several commands, and the settings they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nephelae.config import Settings, load_settings

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Nephelae home directory \\[env: NEPHELAE_HOME; default: ./nephelae-home]",
        show_default=False,
    ),
]


def settings_from(home: Path | None, **overrides: Any) -> Settings:
    """Settings for this command: its options win over NEPHELAE_* variables and the home's nephelae.toml."""
    return load_settings(home, **overrides)
