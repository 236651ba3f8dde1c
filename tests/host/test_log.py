"""Structured logs: one JSON object (or key=value line) per record, secrets masked."""

from __future__ import annotations

import json
import logging

from shopologic import log
from websocket_realtime_engine.config import Settings


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("realtime.test", logging.WARNING, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_carry_the_extra_fields() -> None:
    line = log.StructuredFormatter("json").format(record("node started", node_id="n1"))
    parsed = json.loads(line)
    assert parsed["msg"] == "node started" and parsed["node_id"] == "n1" and parsed["level"] == "warning"


def test_text_lines_are_key_value() -> None:
    line = log.StructuredFormatter("text").format(record("hello", port=8080))
    assert 'msg="hello"' in line and "port=8080" in line


def test_registered_secrets_never_appear() -> None:
    log.redact("s3cr3t-api-key-value", "another-secret")
    line = log.StructuredFormatter("json").format(record("auth with s3cr3t-api-key-value", header="another-secret"))
    assert "s3cr3t-api-key-value" not in line and "another-secret" not in line and "***" in line


def test_settings_redacted_masks_credentials() -> None:
    shown = Settings(app_secret="topsecret", api_key="key123", redis_url="redis://:pw@h:6379").redacted()
    assert shown["app_secret"] == shown["api_key"] == shown["redis_url"] == "***"
    assert shown["port"] == 8080


def test_a_cookie_a_plugin_names_is_masked_wherever_it_is_quoted() -> None:
    line = 'Cookie: realtime_admin=1796063464.abc123signature; theme=dark "realtime_admin = x.y"'
    log.SECRET_SHAPES[:] = [shape for shape in log.SECRET_SHAPES if not shape.pattern.startswith("(realtime_admin")]
    assert "abc123signature" in log.mask(line)
    log.redact_cookie("realtime_admin")
    log.redact_cookie("realtime_admin")  # registering twice adds one shape
    masked = log.mask(line)
    assert "abc123signature" not in masked and "x.y" not in masked and "theme=dark" in masked
    assert sum(shape.pattern.startswith("(realtime_admin") for shape in log.SECRET_SHAPES) == 1


async def test_the_engine_masks_its_admin_cookie_once_its_routes_are_registered(scoped_env: dict[str, str]) -> None:
    from shopologic.config import HostSettings
    from shopologic.platform import Platform
    from websocket_realtime_engine import PLUGIN_NAME

    log.SECRET_SHAPES[:] = [shape for shape in log.SECRET_SHAPES if not shape.pattern.startswith("(realtime_admin")]
    line = "Cookie: realtime_admin=1796063464.abc123signature"
    assert "abc123signature" in log.mask(line)
    platform = Platform(HostSettings.from_env())
    await platform.load()
    await platform.activate(PLUGIN_NAME)
    platform.build_app(only=PLUGIN_NAME)  # the engine's register_routes
    await platform.close()
    assert "abc123signature" not in log.mask(line)
