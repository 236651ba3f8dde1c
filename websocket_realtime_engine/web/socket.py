"""The native WebSocket endpoint ``/socket``: read frames, call the node, queue the replies."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web

from websocket_realtime_engine import errors
from websocket_realtime_engine.connection import Connection
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.protocol import native
from websocket_realtime_engine.protocol.channels import ChannelType
from websocket_realtime_engine.web.rest import client_address

log = logging.getLogger("realtime.socket")


async def _reply(node: Node, connection: Connection, request: native.Request) -> bytes | None:
    """Carry out one request; the reply frame, if the request has one."""
    match request:
        case native.Subscribe(channel, auth_value, channel_data, request_id):
            data = await node.subscribe(connection, channel, auth_value, channel_data)
            return native.encode("subscribed", channel, data, request_id)
        case native.Unsubscribe(channel, request_id):
            await node.unsubscribe(connection, channel)
            return native.encode("unsubscribed", channel, None, request_id)
        case native.Message(channel, data, echo, request_id):
            await node.client_message(connection, channel, data, echo)
            return native.encode("ack", channel, None, request_id) if request_id is not None else None
        case native.Presence(channel, auth_value, channel_data, request_id):
            if node.policy.type_of(channel) is not ChannelType.PRESENCE:
                raise errors.ProtocolError(f"{channel} is not a presence channel")
            members = await node.subscribe(connection, channel, auth_value, channel_data)
            return native.encode("presence", channel, members, request_id)
        case native.Signin(auth_value, user_data, request_id):
            member = node.signin(connection, auth_value, user_data)
            return native.encode("signed_in", None, member, request_id)
        case native.Ping(request_id):
            return native.encode("pong", None, None, request_id)
    raise errors.UnknownEventError("unknown request")  # pragma: no cover - parse returns only the above


async def handle_text(node: Node, connection: Connection, text: str) -> None:
    """One text frame in; a reply or an error frame queued out. Never raises."""
    if connection.closing:  # being closed (evicted, disconnected): what it still sends is ignored
        return
    if not connection.frame_bucket.take():
        limit = node.settings.client_frames_per_second
        node.send(connection, native.error_frame(errors.RateLimitError(f"more than {limit:g} frames per second")))
        return
    try:
        request = native.parse(text)
    except native.FrameError as exc:
        node.send(connection, native.error_frame(exc, exc.request_id, exc.channel))
        return
    try:
        reply = await _reply(node, connection, request)
    except errors.RealtimeError as exc:
        reply = native.error_frame(exc, request.id, getattr(request, "channel", None))
    except Exception:
        log.exception("internal error handling a request", extra={"connection_id": connection.id})
        reply = native.error_frame(
            errors.RealtimeError("internal error"), request.id, getattr(request, "channel", None)
        )
    if reply is not None:
        node.send(connection, reply)


async def socket_handler(request: web.Request) -> web.WebSocketResponse:
    """``GET /socket``: one native-protocol connection for its whole life."""
    from websocket_realtime_engine.web.app import NODE_KEY

    node = request.app[NODE_KEY]
    settings = node.settings
    ws = web.WebSocketResponse(
        max_msg_size=settings.max_frame_bytes,
        heartbeat=settings.heartbeat,
        compress=settings.compression,
        timeout=settings.close_timeout,
    )
    await ws.prepare(request)

    async def closer(code: int, reason: str) -> None:
        # A peer that reads nothing (a slow consumer) would hold the drain forever: the timeout
        # makes aiohttp drop the transport instead.
        try:
            async with asyncio.timeout(settings.close_timeout):
                await ws.close(code=code, message=reason.encode())
        except TimeoutError:
            log.info("closing handshake timed out", extra={"code": code})

    transport: Any = request.transport
    try:
        connection = node.open_connection(transport, closer, client_address(request))
    except errors.LimitError as exc:
        await ws.close(code=exc.code, message=exc.message.encode())
        return ws
    node.send(
        connection, native.encode("connected", None, {"connection_id": connection.id, "heartbeat": settings.heartbeat})
    )
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await handle_text(node, connection, message.data)
            elif message.type is WSMsgType.BINARY:
                node.send(
                    connection,
                    native.error_frame(errors.UnsupportedDataError("binary frames are not supported; send JSON text")),
                )
    finally:
        await node.connection_lost(connection)
    return ws
