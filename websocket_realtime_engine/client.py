"""Asking a running node over its REST API from another process (``websocket status``).

Blocking (urllib): callers run it in a thread. Shop events never go this way: they are written to
the outbox (:mod:`websocket_realtime_engine.db.outbox`), which needs no running node.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from websocket_realtime_engine.config import Settings


class EngineUnreachableError(RuntimeError):
    """No running node answered, or it refused the request."""


def request(settings: Settings, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
    """One authenticated REST call to ``settings.public_url``; the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        settings.public_url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {settings.api_key}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - our own engine URL
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise EngineUnreachableError(f"{settings.public_url}{path} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EngineUnreachableError(f"no realtime engine answers at {settings.public_url} ({reason})") from None
