"""Who may join what, as whom: signatures and members, checked before any state changes.

Pure functions of the settings and the channel policy (the settings are passed at each call: the
node's credentials are resolved after it is built). They raise :mod:`errors` for clients.
"""

from __future__ import annotations

from typing import Any

import orjson

from websocket_realtime_engine import errors
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.connection import Connection
from websocket_realtime_engine.protocol import auth, jsonlimits
from websocket_realtime_engine.protocol.channels import ChannelPolicy

Member = dict[str, Any]


def policy_from(settings: Settings) -> ChannelPolicy:
    """The channel policy the settings describe."""
    return ChannelPolicy(
        presence_patterns=settings.presence_patterns,
        private_patterns=settings.private_patterns,
        signin_presence_patterns=settings.signin_presence_patterns,
        client_message_types=settings.client_message_types,
        client_message_patterns=settings.client_message_patterns,
    )


def signed_in_member(settings: Settings, connection: Connection, auth_value: str, user_data: str) -> Member:
    """The user a ``signin`` names, after checking ``auth`` over ``user_data`` for this connection."""
    text = auth.user_string(connection.id, user_data)
    if not auth.verify_auth(settings.app_key, settings.app_secret, text, auth_value):
        raise errors.AuthError("invalid signature for user_data")
    member = parse_member(settings, user_data, "id", "user_data")
    if connection.user_id is not None and connection.user_id != member["user_id"]:
        raise errors.AuthError("the connection is already signed in as another user")
    return member


def check_channel_auth(
    settings: Settings, connection_id: str, channel: str, auth_value: str | None, channel_data: str | None
) -> None:
    """A private or presence channel's signature over the connection, channel (and member)."""
    if not auth_value:
        raise errors.AuthError(f"auth is required for {channel}")
    text = auth.channel_string(connection_id, channel, channel_data)
    if not auth.verify_auth(settings.app_key, settings.app_secret, text, auth_value):
        raise errors.AuthError(f"invalid signature for {channel}")


def presence_member(
    settings: Settings,
    policy: ChannelPolicy,
    connection: Connection,
    channel: str,
    auth_value: str | None,
    channel_data: str | None,
) -> Member:
    """The member a presence subscription joins as: signed channel_data, or the signed-in user.

    A signed-in connection joins as itself only the channels of ``REALTIME_SIGNIN_PRESENCE_PATTERNS``
    (``users:online`` by default); every other presence channel (``users:admins`` too) needs the
    signature of ``POST /api/v1/authenticate``, where the host's ``authorize_channel`` decides.
    """
    if channel_data is not None or auth_value:
        if channel_data is None:
            raise errors.ProtocolError("channel_data is required with auth on a presence channel")
        check_channel_auth(settings, connection.id, channel, auth_value, channel_data)
        return parse_member(settings, channel_data, "user_id", "channel_data")
    if connection.user_id is not None and policy.allows_signed_in_presence(channel):
        return {"user_id": connection.user_id, "user_info": connection.user_info}
    if policy.allows_signed_in_presence(channel):
        raise errors.AuthError(f"sign in before joining {channel}, or give auth and channel_data")
    raise errors.AuthError(f"auth and channel_data are required for {channel} (from POST /api/v1/authenticate)")


def parse_member(settings: Settings, text: str, id_key: str, what: str) -> Member:
    """Read ``{id_key, user_info?}`` from a JSON string that has already been verified (or is about
    to be signed): at most ``REALTIME_MAX_JSON_DEPTH`` levels, no integer beyond 64 bits."""
    value = jsonlimits.loads(text, settings.max_json_depth, what)
    if not isinstance(value, dict):
        raise errors.ProtocolError(f"{what} must be a JSON object")
    user_id = value.get(id_key)
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    longest = settings.max_user_id_length
    if not isinstance(user_id, str) or not user_id or len(user_id) > longest:
        raise errors.ProtocolError(f"{what}.{id_key} must be a non-empty string of at most {longest} characters")
    info = value.get("user_info")
    if info is not None and not isinstance(info, dict):
        raise errors.ProtocolError(f"{what}.user_info must be an object")
    try:
        size = len(orjson.dumps(info)) if info is not None else 0
    except orjson.JSONEncodeError:
        raise errors.ProtocolError(f"{what}.user_info cannot be sent as JSON") from None
    if size > settings.max_user_info_bytes:
        raise errors.LimitError(f"{what}.user_info is larger than {settings.max_user_info_bytes} bytes")
    return {"user_id": user_id, "user_info": info}
