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
