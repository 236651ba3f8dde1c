"""``POST /api/v1/authenticate`` and ``/api/v1/authenticate/user``: signatures for clients.

Three callers: the shop's backend with the API key (it vouches for the user, and may name one for the
host to check), a storefront page with a shop session cookie (the host says who the user is
and whether they may join, through its ``identify_user`` and ``authorize_channel`` hooks), and an
admin page with the admin cookie or token (:mod:`~websocket_realtime_engine.web.admin`: any private or
presence channel). The engine's own channels (``private-realtime.*``) are signed only for admins: the
admin cookie or token, the host's users of role ``admin``, or the API key (the caller vouches).

A session that the host recognises but that has ended (expired, or its user's sessions revoked)
answers 401 ``session_expired`` or ``session_revoked``, telling the page to sign in again; no session
(or a malformed, badly signed cookie) is 401 ``unauthorized``.

Session callers are rate-limited after they are identified, so junk cannot lock a real customer out:
a user the host identifies is limited on its own (per user id), a caller it does not know per client
address. API-key callers count against the API key's rate (:mod:`~websocket_realtime_engine.web.rest`).
Whatever is signed is first read as the engine will read it on ``subscribe``/``signin``
(:func:`~websocket_realtime_engine.admission.parse_member`): a caller gets a 400 rather than a
client a signature the engine then refuses.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from websocket_realtime_engine import admission, errors
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.feeds import is_reserved
from websocket_realtime_engine.protocol import auth
from websocket_realtime_engine.protocol.channels import ChannelType
from websocket_realtime_engine.web.admin import is_admin
from websocket_realtime_engine.web.rest import BUCKETS_KEY as BUCKETS_KEY  # app.py makes the state here
from websocket_realtime_engine.web.rest import (
    ApiError,
    client_address,
    has_api_key,
    limits_of,
    load_body,
    node_of,
    ok,
    read_json,
)
from websocket_realtime_engine.web.schemas import AuthenticateSchema, UserAuthenticateSchema

log = logging.getLogger("realtime.authenticate")
User = dict[str, Any]
Identify = Callable[[web.Request], User | None | Awaitable[User | None]]
AUTHENTICATE_SCHEMA = AuthenticateSchema()
USER_AUTHENTICATE_SCHEMA = UserAuthenticateSchema()
# an admin page's presence member, unless it gives its own channel_data
ADMIN_MEMBER = orjson.dumps({"user_id": "admin", "user_info": {"name": "admin"}}).decode()


@dataclass(frozen=True)
class HostAccess:
    """How the engine asks the host who a request's user is, and whether they may join a channel.

    ``identify`` answers the user, ``None``, or an awaitable of either; it raises
    :class:`~websocket_realtime_engine.errors.SessionEndedError` for a session that has ended.
    """

    identify: Identify = lambda request: None
    authorize: Callable[[User | None, str, str], bool | None] = lambda user, channel, connection_id: None
    requests_per_second: float = 5.0


HOST_ACCESS_KEY = web.AppKey("realtime.host_access", HostAccess)


async def _body(request: web.Request) -> Any:
    """JSON, or Pusher's form body (``socket_id``, ``channel_name``, ``channel_data``)."""
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            form = await request.post()
        except (UnicodeDecodeError, LookupError, ValueError):
            raise ApiError(400, "invalid_request", "the form body is not valid UTF-8 form data") from None
        renamed = {"socket_id": "connection_id", "channel_name": "channel"}
        return {renamed.get(key, key): value for key, value in form.items() if isinstance(value, str)}
    return await read_json(request)


async def _identified(access: HostAccess, request: web.Request) -> User | errors.SessionEndedError | None:
    """The host's answer: its user, ``None`` for no session, or why the session ended."""
    try:
        user = access.identify(request)
        if inspect.isawaitable(user):
            user = await user
    except errors.SessionEndedError as exc:
        return exc
    return user


async def _session_user(request: web.Request) -> User:
    """The host's user for a request without the API key, identified before anything is charged: a
    known user against its own bucket, an unknown caller or an ended session against its address's
    (then 401)."""
    access = request.app[HOST_ACCESS_KEY]
    user = await _identified(access, request)
    caller = ("user", str(user.get("id"))) if isinstance(user, dict) else ("address", client_address(request))
    rate = access.requests_per_second
    if not limits_of(request).take(caller, rate):
        raise ApiError(429, "rate_limited", "too many authentication requests; slow down", retry_after=1 / rate)
    if isinstance(user, errors.SessionEndedError):
        raise ApiError(401, user.name, user.message)
    if user is None:
        raise ApiError(401, "unauthorized", "no API key and no shop session")
    return user


def _charge_admin(request: web.Request) -> None:
    """An admin page's request, against its client address's bucket (the session callers' rate)."""
    rate = request.app[HOST_ACCESS_KEY].requests_per_second
    if not limits_of(request).take(("admin", client_address(request)), rate):
        raise ApiError(429, "rate_limited", "too many authentication requests; slow down", retry_after=1 / rate)


def _checked_member(settings: Settings, text: str, id_key: str, what: str) -> admission.Member:
    """``text`` read as ``subscribe``/``signin`` will read it, its errors as 400s."""
    try:
        return admission.parse_member(settings, text, id_key, what)
    except errors.LimitError as exc:
        raise ApiError(400, "limit_exceeded", exc.message) from None
    except errors.ProtocolError as exc:
        raise ApiError(400, "invalid_request", exc.message) from None


async def authenticate(request: web.Request) -> web.Response:
    """Sign a connection onto a private or presence channel."""
    node = node_of(request)
    data = load_body(AUTHENTICATE_SCHEMA, await _body(request))
    channel, connection_id = data["channel"], data["connection_id"]
    trusted = has_api_key(request)
    # the admin pages' cookie goes along with every same-site request: a shop session, when the
    # request has one too (the owner on their own storefront), is who is asking
    admin = not trusted and is_admin(request) and await _identified(request.app[HOST_ACCESS_KEY], request) is None
    if admin:
        _charge_admin(request)
    user = data["user"] if trusted or admin else await _session_user(request)
    kind = node.policy.type_of(channel)
    if kind is ChannelType.PUBLIC:
        raise ApiError(400, "public_channel", f"{channel} is public: subscribe without auth")
    if user is not None and not request.app[HOST_ACCESS_KEY].authorize(user, channel, connection_id):
        raise ApiError(403, "forbidden", f"not allowed to join {channel}")
    if is_reserved(channel) and not (trusted or admin or (user is not None and user.get("role") == "admin")):
        raise ApiError(403, "reserved_channel", f"{channel} is the engine's own: only admins may join it")
    settings = node.settings
    channel_data = None
    if kind is ChannelType.PRESENCE:
        # a vouched-for channel_data (an admin's own member by default), unless a user was named: then
        # the member is that user
        given = data["channel_data"] if data["channel_data"] is not None or not admin else ADMIN_MEMBER
        channel_data = given if user is None else _member_data(settings, user, given)
        if channel_data is None:
            raise ApiError(400, "invalid_request", "channel_data: required for a presence channel")
        _checked_member(settings, channel_data, "user_id", "channel_data")
    signature = auth.make_auth(
        settings.app_key, settings.app_secret, auth.channel_string(connection_id, channel, channel_data)
    )
    if user is not None:  # once it subscribes with it, the connection is this user's (revocation ends it)
        try:
            await node.vouch(connection_id, channel, str(user["id"]))
        except errors.UnavailableError as exc:  # the broker away: the signature still stands
            log.warning("could not tell the node of connection %s whose it is: %s", connection_id, exc)
    return ok({"auth": signature, "channel_data": channel_data} if channel_data else {"auth": signature})


def _member_data(settings: Settings, user: User, given: str | None) -> str:
    """The presence member of a named or session user; a given channel_data must name that same user."""
    if given is not None and _checked_member(settings, given, "user_id", "channel_data")["user_id"] != str(user["id"]):
        raise ApiError(403, "forbidden", "channel_data names another user")
    return orjson.dumps({"user_id": user["id"], "user_info": user.get("info") or {}}).decode()


async def authenticate_user(request: web.Request) -> web.Response:
    """Sign a user in on a connection (the ``signin`` frame's ``auth`` and ``user_data``)."""
    node = node_of(request)
    data = load_body(USER_AUTHENTICATE_SCHEMA, await _body(request))
    if has_api_key(request):
        user_data = data["user_data"]
        if not user_data or not isinstance(user_data.get("id"), str) or not user_data["id"]:
            raise ApiError(400, "invalid_request", "user_data: an object with a string id is required")
    else:
        user = await _session_user(request)
        user_data = {"id": user["id"], "user_info": user.get("info") or {}}
    text = orjson.dumps(user_data).decode()
    settings = node.settings
    _checked_member(settings, text, "id", "user_data")
    signature = auth.make_auth(settings.app_key, settings.app_secret, auth.user_string(data["connection_id"], text))
    return ok({"auth": signature, "user_data": text})
