"""Settings: defaults, the home's nephelae.toml, NEPHELAE_* variables, command-line values; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nephelae.config import DEFAULT_HOME, load_settings, prepare_home, setting_names
from nephelae.errors import ConfigurationError


def test_defaults_put_everything_in_the_home(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.home == tmp_path
    assert settings.database == f"sqlite:///{tmp_path.resolve() / 'nephelae.db'}"
    assert settings.url == "http://127.0.0.1:8000"
    assert settings.archive_dir == tmp_path / "archive"


def test_default_home_is_in_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().home == DEFAULT_HOME == Path("nephelae-home")


def test_home_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEPHELAE_HOME", str(tmp_path / "elsewhere"))
    assert load_settings().home == tmp_path / "elsewhere"


def test_file_then_environment_then_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "nephelae.toml").write_text('port = 9000\nhost = "0.0.0.0"\nplatform_name = "CERSAT"\n')
    settings = load_settings(tmp_path)
    assert (settings.port, settings.host, settings.platform_name) == (9000, "0.0.0.0", "CERSAT")

    monkeypatch.setenv("NEPHELAE_PORT", "9100")
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", "postgresql+psycopg://db.example.org/nephelae")
    settings = load_settings(tmp_path)
    assert settings.port == 9100
    assert settings.database == "postgresql+psycopg://db.example.org/nephelae"
    assert settings.host == "0.0.0.0"

    assert load_settings(tmp_path, port=9200, host=None).port == 9200


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("port = ", "not valid TOML"),
        ("colour = 'blue'\n", "colour: Extra inputs are not permitted"),
        ("port = 'eighty'\n", "port: Input should be a valid integer"),
        ("port = 0\n", "port: Input should be greater than or equal to 1"),
        ("home = '/elsewhere'\n", "may not set `home`"),
    ],
)
def test_bad_settings_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "nephelae.toml").write_text(content)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_settings(tmp_path)
    assert "nephelae.toml" in caught.value.detail


def test_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEPHELAE_LOG_LEVEL", "loud")
    with pytest.raises(ConfigurationError, match="log_level"):
        load_settings(tmp_path)


def test_prepare_home_lays_out_the_contract_layout(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "home")
    prepare_home(settings)
    for name in ("nephelae.toml", "archive", "workspaces", "campaigns", "logs"):
        assert (tmp_path / "home" / name).exists(), name
    # The template it writes is valid and sets nothing.
    assert load_settings(tmp_path / "home") == settings


def test_prepare_home_keeps_an_existing_settings_file(tmp_path: Path) -> None:
    tmp_path.joinpath("nephelae.toml").write_text("port = 8123\n")
    prepare_home(load_settings(tmp_path))
    assert load_settings(tmp_path).port == 8123


def test_prepare_home_unwritable_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="cannot create"):
        prepare_home(load_settings(blocker / "home"))


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in setting_names():
        assert f"NEPHELAE_{name.upper()}" in readme, f"NEPHELAE_{name.upper()} is not documented in README.md"
