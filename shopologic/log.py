"""Structured logs: one JSON object per line on stderr (or ``key=value`` with ``REALTIME_LOG_FORMAT=text``).

Secret values registered with :func:`redact` are masked in every record, whatever logs them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_secrets: set[str] = set()


def redact(*values: str) -> None:
    """Never print these values (API keys, app secrets) in a log line."""
    _secrets.update(value for value in values if value and len(value) >= 6)


def _mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class StructuredFormatter(logging.Formatter):
    """A log record as one JSON object, or as ``key=value`` pairs."""

    def __init__(self, style_name: str = "json") -> None:
        super().__init__()
        self.style_name = style_name

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in STANDARD_ATTRIBUTES and not k.startswith("_")})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.style_name == "text":
            line = " ".join(f"{key}={json.dumps(value, default=str)}" for key, value in fields.items())
        else:
            line = json.dumps(fields, default=str)
        return _mask(line)


def configure(level: str = "info", style_name: str = "json") -> None:
    """Send every logger's records to stderr, structured, at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(style_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin step is printed instead
    try:
        root.setLevel(level.upper())
    except ValueError:
        root.setLevel(logging.INFO)
        logging.getLogger("shopologic").warning("unknown log level %r, using info", level)
