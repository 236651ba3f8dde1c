"""Framings: how a connection's transport wraps one text message. Sans-I/O, bytes in, bytes out.

A framing belongs to the connection, not to the dialect: the same native JSON text goes out as a
WebSocket frame on a socket and (later) as an ``id:/data:`` event on an SSE stream.
"""

from __future__ import annotations


def websocket_text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 §5.2) around ``payload``.

    Built once per publication and written as it is to every subscriber's transport; aiohttp has
    no public API for a prebuilt frame.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload
