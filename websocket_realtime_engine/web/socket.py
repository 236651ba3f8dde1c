"""The native WebSocket endpoint ``/socket``: a thin loop around a :class:`Session`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web

from websocket_realtime_engine import errors
from websocket_realtime_engine.connection import Wire
from websocket_realtime_engine.protocol import native
from websocket_realtime_engine.protocol.commands import Dialect
from websocket_realtime_engine.protocol.framing import websocket_text_frame
from websocket_realtime_engine.session import Session
from websocket_realtime_engine.web.cors import check_socket_origin
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.rest import client_address
from websocket_realtime_engine.web.throttle import THROTTLE_KEY

log = logging.getLogger("realtime.socket")

# one per process: the hub encodes a publication once for all native WebSocket subscribers
NATIVE_WEBSOCKET = Wire("native+websocket", native.encode_publication, websocket_text_frame)


def websocket_closer(ws: web.WebSocketResponse, transport: Any, dialect: Dialect, timeout: float) -> Any:
    """How the engine closes this WebSocket: a close frame with the dialect's code, and when the peer
    does not take it within ``timeout`` (a reader that reads nothing), the transport aborted."""

    async def close(reason: errors.CloseReason) -> None:
        try:
            async with asyncio.timeout(timeout):
                await ws.close(code=dialect.close_code(reason), message=reason.value.encode())
        except TimeoutError:
            log.info("closing handshake timed out: transport aborted", extra={"reason": reason.name})
            if transport is not None:
                transport.abort()

    return close


async def socket_handler(request: web.Request) -> web.WebSocketResponse:
    """``GET /socket``: one native-protocol connection for its whole life."""
    check_socket_origin(request)  # a page REALTIME_ALLOWED_ORIGINS does not list: 403 before the upgrade
    address = client_address(request)
    # behind a trusted proxy, counted by the client's address: over its limits, 429 before the upgrade
    request.app[THROTTLE_KEY].check_forwarded(request, address)
    node = request.app[NODE_KEY]
    settings = node.settings
    ws = web.WebSocketResponse(
        max_msg_size=settings.max_frame_bytes,
        heartbeat=settings.heartbeat,
        compress=settings.compression,
        timeout=settings.close_timeout,
        autoping=False,  # PING frames count against the frame rate like any other; answered below
    )
    await ws.prepare(request)
    transport: Any = request.transport
    dialect = native.dialect(settings.max_json_depth)  # one per depth setting, made once
    closer = websocket_closer(ws, transport, dialect, settings.close_timeout)
    try:
        connection = node.open_connection(transport, closer, NATIVE_WEBSOCKET, address)
    except errors.ConnectionRefused as exc:
        await ws.close(code=native.close_code(exc.reason), message=exc.message.encode())
        return ws
    session = Session(node, connection, dialect)
    session.hello()
    try:
        async for message in ws:
            if not session.admit():  # every frame counts, whatever its kind
                # over the rate: read nothing for a while; aiohttp's queue fills, it stops reading the
                # socket, and TCP holds the flooder back instead of the node dropping each frame
                await asyncio.sleep(connection.flood.pause())
                continue
            kind = message.type
            if kind is WSMsgType.TEXT:
                await session.process(message.data)
            elif kind is WSMsgType.BINARY:
                session.refuse_binary()
            elif kind is WSMsgType.PING:
                await ws.pong(message.data)
    finally:
        await node.connection_lost(connection)
    return ws
