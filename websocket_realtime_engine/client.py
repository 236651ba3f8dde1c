"""Publishing from a process where no node runs: through a running node's REST API.

Used by hook implementations in the ``emit`` command and in worker processes. Blocking (urllib), so
it is only for code that is not running an event loop.
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


def broadcast(settings: Settings, channels: list[str], event: str, data: Any) -> Any:
    """``POST /api/v1/broadcast`` on the running engine."""
    return request(settings, "POST", "/api/v1/broadcast", {"channels": channels, "event": event, "data": data})
