"""Errors of the engine and the codes clients see.

Exception tree::

    RealtimeError(code, message)          base; ``code`` is what an error frame carries
    ├── ProtocolError                      4000-4003: the frame itself is wrong
    ├── ChannelError                       4002: bad channel name
    ├── AuthError                          4009: missing or wrong signature, sign-in needed
    │   └── SessionEndedError              the host's shop session ended (HTTP 401, never a frame):
    │       ├── SessionExpiredError          ``session_expired``: past its expiry
    │       └── SessionRevokedError          ``session_revoked``: its user's sessions were revoked
    ├── ForbiddenError                     4010: allowed by nobody (client publishing, not subscribed)
    │   └── ReservedChannelError           4011: ``private-realtime.*`` is the engine's own (feeds.py)
    ├── LimitError                         4020: a configured limit was reached
    ├── RateLimitError                     4029: too many client messages
    └── UnavailableError                   4503: a backend (broker, presence) cannot be reached

Error frames (``{"event":"error","data":{"code","message"}}``, the connection stays open):

======  =====================  ======================================================================
code    name                   when
======  =====================  ======================================================================
4000    bad_request            malformed JSON, not an object, a missing or mistyped field
4001    unknown_event          the ``event`` is not one the server knows
4002    invalid_channel        the channel name breaks the name rules (characters, 164 at most)
4003    unsupported_data       a binary frame (only JSON text frames are spoken)
4009    unauthorized           missing or wrong ``auth``; presence/sign-in rules not met
4010    forbidden              client publishing is not allowed on the channel, or not subscribed
4011    reserved_channel       publishing on ``private-realtime.*``: only the engine publishes there
4020    limit_exceeded         channels per connection, presence members, user info size
4029    rate_limited           more client messages (or frames of any kind) per second than allowed
4500    internal_error         a bug; logged with its trace, the connection stays open
4503    unavailable            the broker or presence backend cannot be reached right now
======  =====================  ======================================================================

Closing a connection, the engine gives a :class:`CloseReason`; each dialect maps it to its own close
code (the native dialect's table is in :mod:`websocket_realtime_engine.protocol.native`).
"""

from __future__ import annotations

import enum


class RealtimeError(Exception):
    """Base of client-facing errors: a numeric ``code`` and a message safe to show."""

    code = 4500
    name = "internal_error"

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ProtocolError(RealtimeError):
    code = 4000
    name = "bad_request"


class UnknownEventError(ProtocolError):
    code = 4001
    name = "unknown_event"


class ChannelError(RealtimeError):
    code = 4002
    name = "invalid_channel"


class UnsupportedDataError(ProtocolError):
    code = 4003
    name = "unsupported_data"


class AuthError(RealtimeError):
    code = 4009
    name = "unauthorized"


class SessionEndedError(AuthError):
    """The host identified a request's shop session, but it has ended: the user must sign in again.

    ``HostAccess.identify`` raises it; the authenticate routes answer 401 with its ``name`` as the code.
    """

    name = "session_ended"


class SessionExpiredError(SessionEndedError):
    name = "session_expired"


class SessionRevokedError(SessionEndedError):
    name = "session_revoked"


class ForbiddenError(RealtimeError):
    code = 4010
    name = "forbidden"


class ReservedChannelError(ForbiddenError):
    """A client publishes on a channel of the engine's own (``private-realtime.*``)."""

    code = 4011
    name = "reserved_channel"


class LimitError(RealtimeError):
    code = 4020
    name = "limit_exceeded"


class RateLimitError(RealtimeError):
    code = 4029
    name = "rate_limited"


class UnavailableError(RealtimeError):
    code = 4503
    name = "unavailable"


class StartupError(RuntimeError):
    """The node cannot start as configured (another live node has its id, no app credentials); the
    host shows the message as one line."""


class CloseReason(enum.Enum):
    """Why the server ends a connection; the dialect turns it into a close code."""

    SHUTDOWN = "server shutting down"  # reconnect, to another node
    DISCONNECTED = "disconnected by the server"  # through the REST API: do not reconnect by itself
    OVER_CAPACITY = "the node is at its connection limit"  # reconnect after a back-off
    SLOW_CONSUMER = "slow consumer"  # fell too far behind: reconnect and recover
    FLOODING = "kept sending over the frame rate"  # sustained abuse: reconnect after a back-off


class ConnectionRefused(RealtimeError):
    """A new connection is not accepted (the node is full or shutting down)."""

    code = 4020
    name = "limit_exceeded"

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason.value)
        self.reason = reason
