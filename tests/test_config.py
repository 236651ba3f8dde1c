"""Settings: defaults < config file < environment < command-line flags; bad values name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from shopologic.config import ConfigError, normalize_database_url
from websocket_realtime_engine.config import Settings, SettingsError, load_settings
from websocket_realtime_engine.db import models
from websocket_realtime_engine.db.credentials import ensure_default_app, resolve_credentials, stored_credentials


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "realtime.toml"
    config.write_text('port = 9001\nheartbeat = 5.5\npresence_patterns = ["room:*", "users:*"]\n')
    assert load_settings(environ={}, config_file=config).port == 9001
    env = {"REALTIME_PORT": "9002", "REALTIME_COMPRESSION": "yes", "REALTIME_PRIVATE_PATTERNS": "staff.*, ops.*"}
    settings = load_settings(environ=env, config_file=config)
    assert settings.port == 9002 and settings.heartbeat == 5.5 and settings.compression is True
    assert settings.presence_patterns == ("room:*", "users:*") and settings.private_patterns == ("staff.*", "ops.*")
    assert load_settings(environ=env, config_file=config, port=9003).port == 9003
    assert load_settings(environ={"REALTIME_CONFIG_FILE": str(config)}).port == 9001
    assert load_settings(environ={"REALTIME_PORT": ""}, config_file=config).port == 9001  # empty means unset


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REALTIME_PORT": "eighty"}, "REALTIME_PORT"),
        ({"REALTIME_PORT": "70000"}, "REALTIME_PORT"),
        ({"REALTIME_COMPRESSION": "maybe"}, "REALTIME_COMPRESSION"),
        ({"REALTIME_MAX_CONNECTIONS": "0"}, "REALTIME_MAX_CONNECTIONS"),
        ({"REALTIME_APP_ID": "abc"}, "REALTIME_APP_ID"),
        ({"REALTIME_CLIENT_MESSAGE_TYPES": "public,secret"}, "REALTIME_CLIENT_MESSAGE_TYPES"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=env, config_file=tmp_path / "none.toml")


def test_bad_config_files(tmp_path: Path) -> None:
    config = tmp_path / "realtime.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="unknown setting.*prot"):
        load_settings(environ={}, config_file=config)
    config.write_text("port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(environ={}, config_file=config)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_urls_get_the_async_drivers(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url"])
def test_unsupported_database_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_database_url(url)


async def test_environment_credentials_win_at_every_start_and_are_stored(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    created, was_created = await ensure_default_app(engine, Settings())
    assert was_created and created["app_id"].isdigit() and len(created["api_key"]) == 48
    again, was_created = await ensure_default_app(engine, Settings())
    assert not was_created and again == created
    from_env = await resolve_credentials(engine, Settings(api_key="env-key", app_secret="env-secret"))
    assert (
        from_env.api_key == "env-key" and from_env.app_secret == "env-secret" and from_env.app_id == created["app_id"]
    )
    stored = await stored_credentials(engine)
    assert stored is not None and stored["api_key"] == "env-key" and stored["app_key"] == created["app_key"]
    await engine.dispose()
