"""A second plugin for the tests: it records the realtime engine's events it is told about."""

from __future__ import annotations

from typing import Any

from shopologic.hookspecs import hookimpl

from .record import received, record

__all__ = ["received"]


@hookimpl
def realtime_connection_opened(connection_id: str, node_id: str) -> None:
    record("connection_opened", connection_id=connection_id, node_id=node_id)


@hookimpl
def realtime_channel_occupied(channel: str) -> None:
    record("channel_occupied", channel=channel)


@hookimpl
def realtime_channel_vacated(channel: str) -> None:
    record("channel_vacated", channel=channel)


@hookimpl
def realtime_member_added(channel: str, user_id: str, user_info: dict[str, Any] | None) -> None:
    record("member_added", channel=channel, user_id=user_id)


@hookimpl
def realtime_client_message(channel: str, data: Any, connection_id: str, user_id: str | None) -> None:
    record("client_message", channel=channel, data=data)
