"""Settings: built once in each entry point and passed down, never read at import time.

Sources, strongest first: explicit values given by the entry point (command-line options), `NEPHELAE_<NAME>`
environment variables, `NEPHELAE_HOME/nephelae.toml`, then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from nephelae.errors import ConfigurationError

ENV_PREFIX = "NEPHELAE_"
SETTINGS_FILE = "nephelae.toml"
DEFAULT_HOME = Path("nephelae-home")


class Settings(BaseSettings):
    """Every setting of the platform; each can be set as `NEPHELAE_<NAME>` or in `nephelae.toml`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    home: Path = Field(DEFAULT_HOME, description="Directory holding settings, database, archive, workspaces.")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the database; SQLite in the home when unset.")
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    public_url: str | None = Field(
        None, description="URL users reach the server at, when it differs from http://HOST:PORT."
    )
    platform_name: str = Field("Nephelae", description="Name shown on the landing page.")
    platform_description: str = Field(
        "Earth-observation archives processed where they are stored.",
        description="One sentence on what this platform hosts, shown on the landing page.",
    )
    dask_scheduler: str | None = Field(
        None, description="Address of an existing Dask scheduler; a LocalCluster when unset."
    )
    run_engine: bool = Field(
        True, description="Run the campaign engine in the server (one works per database; others stand by)."
    )
    dask_workers: int | None = Field(
        None, ge=1, description="Worker processes of the LocalCluster (no scheduler set); one per core when unset."
    )
    dask_threads_per_worker: int = Field(1, ge=1, description="Threads of each LocalCluster worker process.")
    task_memory_mb: int | None = Field(
        4096, ge=64, description="Memory limit of a campaign task when its spec gives none (MB); unset: no limit."
    )
    task_timeout_seconds: int | None = Field(
        3600, ge=1, description="Wall-clock limit of a campaign task when its spec gives none; unset: no limit."
    )
    workspace_max_upload_mb: int = Field(
        1024, ge=1, description="Largest file one upload may put into a workspace (MB)."
    )
    workspace_quota_mb: int | None = Field(
        10240, ge=1, description="Total size of the files of one user's workspace (MB); unset: no quota."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Server log level.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For header is believed.",
    )
    auth_failure_limit: int = Field(
        10, ge=1, description="Failed authentications one address may make per window before being slowed down."
    )
    auth_failure_window: float = Field(60.0, gt=0, description="Length in seconds of that window.")
    token_expiry_days: int = Field(90, ge=1, le=3650, description="Default lifetime of new API tokens, in days.")
    ssh_mode: Literal["gateway", "accounts"] = Field(
        "gateway", description="SSH entry point: one shared service login (gateway) or a Unix user per account."
    )
    ssh_login: str = Field(
        "nephelae", pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="Unix login of the SSH gateway (gateway mode)."
    )
    ssh_port: int = Field(2222, ge=1, le=65535, description="Port of the SSH entry point (sshd-config, firewall).")
    ssh_user_prefix: str = Field(
        "",
        pattern=r"^[a-z_]?[a-z0-9_-]{0,15}$",
        description="Prefix of the Unix users made for accounts (accounts mode).",
    )
    ssh_group: str = Field(
        "nephelae-users", pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="Unix group of those users (accounts mode)."
    )
    ssh_token_minutes: int = Field(
        720, ge=1, le=10080, description="Lifetime of the tokens minted for SSH sessions and commands, in minutes."
    )
    ssh_entry_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="Addresses of the SSH entry point as the API sees them; SSH session tokens work only from there.",
    )
    analysis_max_cells: int = Field(
        200_000_000,
        ge=1,
        description="Largest synchronous analysis (granules x grid cells in the box x variables); larger: a campaign.",
    )

    @property
    def database(self) -> str:
        """The database URL in force: the configured one, else SQLite in the home."""
        return self.database_url or f"sqlite:///{self.home.resolve() / 'nephelae.db'}"

    @property
    def url(self) -> str:
        """Where users reach the HTTP server."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return self.public_url or f"http://{host}:{self.port}"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def workspaces_dir(self) -> Path:
        return self.home / "workspaces"

    @property
    def campaigns_dir(self) -> Path:
        return self.home / "campaigns"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def setting_names() -> list[str]:
    """Names of every setting, as used in `nephelae.toml` (upper-case them for the environment)."""
    return list(Settings.model_fields)


def load_settings(home: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings for one entry point.

    `home` and `overrides` come from command-line options and win over everything; unset (None) ones are ignored.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    home = home or _env_home() or DEFAULT_HOME
    from_file = {name: value for name, value in _read_settings_file(home).items() if _env_name(name) not in os.environ}
    try:
        return Settings(**{**from_file, **given, "home": home})
    except ValidationError as error:
        raise ConfigurationError(_describe(error, home)) from None


def _env_name(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def _env_home() -> Path | None:
    value = os.environ.get(_env_name("home"))
    return Path(value) if value else None


def _read_settings_file(home: Path) -> dict[str, Any]:
    path = home / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path} is not valid TOML ({error}); fix or remove it.") from None
    if "home" in values:
        raise ConfigurationError(f"{path} may not set `home`: the home is where this file lives.")
    return values


def _describe(error: ValidationError, home: Path) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        problems.append(f"{name}: {item['msg']}")
    where = f"{home / SETTINGS_FILE} or the {ENV_PREFIX}* environment variables"
    return f"invalid settings ({'; '.join(problems)}); check {where}. Known settings: {', '.join(setting_names())}."


_SETTINGS_TEMPLATE = """\
# Nephelae settings. Every setting can also be given as an environment variable NEPHELAE_<NAME>,
# which wins over this file. See the README for the full list.

# database_url = "postgresql+psycopg://nephelae@db.example.org/nephelae"   # SQLite in this home when unset
# host = "127.0.0.1"
# port = 8000
# public_url = "https://nephelae.example.org"
# platform_name = "Nephelae"
# dask_scheduler = "tcp://scheduler.example.org:8786"                     # a LocalCluster when unset
# dask_workers = 4                                                         # LocalCluster size; one per core when unset
# task_memory_mb = 4096                                                    # per-task defaults, when a spec sets none
# task_timeout_seconds = 3600
"""


def prepare_home(settings: Settings) -> None:
    """Create the home layout (settings file, archive, workspaces, campaigns, logs) where missing."""
    for directory in (
        settings.home,
        settings.archive_dir,
        settings.workspaces_dir,
        settings.campaigns_dir,
        settings.logs_dir,
    ):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(f"cannot create {directory}: {error.strerror}; choose another --home") from None
    settings_file = settings.home / SETTINGS_FILE
    if not settings_file.exists():
        settings_file.write_text(_SETTINGS_TEMPLATE, encoding="utf-8")
