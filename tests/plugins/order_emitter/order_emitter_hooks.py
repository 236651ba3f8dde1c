"""A second plugin for the tests: it records the realtime engine's events it is told about."""

from __future__ import annotations

import threading
from typing import Any

from shopologic.hookspecs import hookimpl

received: list[tuple[str, dict[str, Any]]] = []
lock = threading.Lock()


def _record(name: str, **payload: Any) -> None:
    with lock:
        received.append((name, payload))


@hookimpl
def realtime_connection_opened(connection_id: str, node_id: str) -> None:
    _record("connection_opened", connection_id=connection_id, node_id=node_id)


@hookimpl
def realtime_member_added(channel: str, user_id: str, user_info: dict[str, Any] | None) -> None:
    _record("member_added", channel=channel, user_id=user_id)


@hookimpl
def realtime_client_message(channel: str, data: Any, connection_id: str, user_id: str | None) -> None:
    _record("client_message", channel=channel, data=data)
