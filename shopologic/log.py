"""Structured logs: one JSON object per line on stderr (or ``key=value`` with ``REALTIME_LOG_FORMAT=text``).

Secrets are masked in every record, whatever logs them: the values registered with :func:`redact`
(API keys, app secrets, the session-signing key, passwords), and, by their shape, an
``Authorization`` header's value and whatever follows ``Bearer``, a shop session cookie's value
(``shopologic_session=…``, and the cookies plugins name with :func:`redact_cookie`) and the
password of a URL (``redis://user:…@host``). The SQLite driver's debug logging, which prints
statement parameters, is kept at ``info``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
MASK = "***"
SESSION_COOKIE = "shopologic_session"


def cookie_shape(name: str) -> re.Pattern[str]:
    """The value of the cookie ``name`` wherever it appears in a line (``name=value``)."""
    return re.compile(rf"({re.escape(name)}\s*=\s*)[^\s\"'\\,;]+")


# secrets recognised by their shape, wherever they appear in a line (JSON-escaped or not)
SECRET_SHAPES = [
    re.compile(r"(?i)(\bauthorization\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\"'\\\n,;}]+"),  # the header's value
    re.compile(r"(?i)(\bbearer\s+)[^\s\"'\\,;]+"),  # a bearer token wherever it is
    cookie_shape(SESSION_COOKIE),  # a session cookie
    re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@\"']*:)[^\s@/\"']+(?=@)"),  # a URL's password
]
# loggers that print SQL parameters (credentials being stored) at ``debug`` (SQLAlchemy's own
# loggers stay at the ``warning`` it gives them)
QUIET_BELOW_INFO = ("aiosqlite",)
_secrets: set[str] = set()


def redact(*values: str) -> None:
    """Never print these values (API keys, app secrets, passwords) in a log line.

    Values shorter than 6 characters are not registered: masking them would garble unrelated text.
    """
    for value in values:
        if value and len(value) >= 6:
            _secrets.update({value, json.dumps(value)[1:-1]})  # as written, and as a JSON string holds it


def redact_cookie(name: str) -> None:
    """Never print the value of the cookie ``name`` (a plugin's own session cookie) in a log line."""
    shape = cookie_shape(name)
    if all(known.pattern != shape.pattern for known in SECRET_SHAPES):
        SECRET_SHAPES.append(shape)


def mask(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped value replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for shape in SECRET_SHAPES:
        text = shape.sub(rf"\g<1>{MASK}", text)
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
        return mask(line)


def configure(level: str = "info", style_name: str = "json") -> None:
    """Send every logger's records to stderr, structured, at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(style_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin step is printed instead
    for name in QUIET_BELOW_INFO:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        root.setLevel(level.upper())
    except ValueError:
        root.setLevel(logging.INFO)
        logging.getLogger("shopologic").warning("unknown log level %r, using info", level)
