"""Shop sessions that expire and can be revoked: signing, reading, the per-user version, the CLI.

The version table lives in the platform database: the revocation tests run on SQLite and on the
PostgreSQL server (a database of their own, dropped afterwards). The answers of a running node are
in ``tests/web/test_shop_sessions.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from shopologic import defaults
from shopologic.config import DEFAULT_SESSION_TTL, ConfigError, HostSettings
from shopologic.contracts import PLATFORM_KEY, SessionExpiredError, SessionRevokedError
from shopologic.db import MAX_USER_ID, SessionVersion, session_version
from shopologic.defaults import read_session, session_cookie, sign_session
from shopologic.hookspecs import hookimpl
from shopologic.platform import Platform
from shopologic.transactions import current_transaction
from tests.db import test_migrations as migrations_tests
from tests.host.test_cli import Cli, assert_ok, assert_one_line_error
from websocket_realtime_engine import PLUGIN_NAME

# the platform on SQLite and on PostgreSQL (a fresh database each)
postgres_database = migrations_tests.postgres_database
database_url = migrations_tests.database_url
platform = migrations_tests.platform

SECRET = "sessions-test-secret-0123456789"
USER = {"id": "7", "role": "customer", "info": {"name": "Cy"}}


def signed(secret: str, payload: Any) -> str:
    """A cookie value of any payload, signed as :func:`sign_session` signs (to forge odd sessions)."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{body}.{hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()}"


# -- signing and reading ---------------------------------------------------------------------------


def test_a_session_carries_its_issue_time_expiry_and_version() -> None:
    cookie = sign_session(SECRET, USER, ttl=60, version=3, issued_at=1_000_000)
    session = read_session(SECRET.encode(), cookie, now=1_000_059)
    assert session == {**USER, "iat": 1_000_000, "exp": 1_000_060, "ver": 3}


def test_the_old_call_signs_seven_days_at_version_zero() -> None:
    before = int(time.time())
    session = read_session(SECRET.encode(), sign_session(SECRET, USER))
    assert session is not None and session["ver"] == 0
    assert session["exp"] - session["iat"] == DEFAULT_SESSION_TTL == 7 * 24 * 3600
    assert before <= session["iat"] <= time.time()


def test_an_expired_session_is_refused_as_expired() -> None:
    cookie = sign_session(SECRET, USER, ttl=60, issued_at=1_000_000)
    with pytest.raises(SessionExpiredError, match="expired: sign in again"):
        read_session(SECRET.encode(), cookie, now=1_000_060)


def test_a_cookie_signed_before_sessions_expired_counts_as_expired() -> None:
    with pytest.raises(SessionExpiredError, match="sign in again"):
        read_session(SECRET.encode(), signed(SECRET, USER))  # no iat, exp, ver: valid forever until now


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "no-dot",
        sign_session("another-secret", USER),
        sign_session(SECRET, USER).replace(".", "x.", 1),  # the body changed after signing
        signed(SECRET, {**USER, "iat": 1, "exp": "9999999999", "ver": 0}),
        signed(SECRET, {**USER, "iat": 1, "exp": 9999999999, "ver": True}),
        signed(SECRET, {**USER, "iat": 1, "exp": 9999999999}),
        signed(SECRET, {"id": 7, "role": "customer", "iat": 1, "exp": 9999999999, "ver": 0}),
    ],
)
def test_a_malformed_or_badly_signed_cookie_is_no_session(cookie: str) -> None:
    assert read_session(SECRET.encode(), cookie) is None


def test_a_session_lasts_at_least_a_second() -> None:
    with pytest.raises(ValueError, match="at least 1 second"):
        sign_session(SECRET, USER, ttl=0)


@pytest.mark.parametrize(("value", "seconds"), [(None, DEFAULT_SESSION_TTL), ("", DEFAULT_SESSION_TTL), ("90", 90)])
def test_the_session_ttl_setting(value: str | None, seconds: int, tmp_path: Path) -> None:
    env = {"SHOPOLOGIC_VAR_DIR": str(tmp_path), "SHOPOLOGIC_SECRET_KEY": SECRET}
    if value is not None:
        env["SHOPOLOGIC_SESSION_TTL"] = value
    assert HostSettings.from_env(env).session_ttl == seconds


@pytest.mark.parametrize("value", ["soon", "0", "-5", "1.5"])
def test_a_bad_session_ttl_names_the_setting(value: str, tmp_path: Path) -> None:
    env = {"SHOPOLOGIC_VAR_DIR": str(tmp_path), "SHOPOLOGIC_SECRET_KEY": SECRET, "SHOPOLOGIC_SESSION_TTL": value}
    with pytest.raises(ConfigError, match="SHOPOLOGIC_SESSION_TTL"):
        HostSettings.from_env(env)


# -- revocation: the per-user version, on SQLite and PostgreSQL ----------------------------------------


class RevocationRecorder:
    """A plugin implementing ``sessions_revoked``: what an async caller gets is a coroutine that reads,
    in the revocation's own transaction, the version it just wrote."""

    def __init__(self) -> None:
        self.revoked: list[str] = []

    @hookimpl
    def sessions_revoked(self, user_id: str) -> Any:
        self.revoked.append(user_id)
        return self.version_seen(user_id)

    async def version_seen(self, user_id: str) -> int:
        transaction = current_transaction()
        assert transaction is not None, "sessions_revoked is called outside the revocation's transaction"
        query = select(SessionVersion.version).where(SessionVersion.user_id == user_id)
        return int((await transaction.connection.execute(query)).scalar_one())


@pytest.fixture
def recorder(platform: Platform) -> Iterator[RevocationRecorder]:
    plugin = RevocationRecorder()
    platform.pm.register(plugin, name="sessions-test")
    try:
        yield plugin
    finally:
        platform.pm.unregister(plugin)


async def test_revoking_bumps_the_version_and_awaits_the_hook_in_the_same_transaction(
    platform: Platform, recorder: RevocationRecorder
) -> None:
    assert await session_version(platform.engine, "7") == 0
    assert await platform.revoke_sessions("7") == [1]
    assert await platform.revoke_sessions("7") == [2]
    assert recorder.revoked == ["7", "7"]
    assert await session_version(platform.engine, "7") == 2
    assert await session_version(platform.engine, "8") == 0  # per user


async def test_concurrent_revocations_all_count(platform: Platform, recorder: RevocationRecorder) -> None:
    await asyncio.gather(*(platform.revoke_sessions("7") for _ in range(5)))
    assert await session_version(platform.engine, "7") == 5


async def test_a_revocation_in_a_transaction_that_rolls_back_never_happened(
    platform: Platform, recorder: RevocationRecorder
) -> None:
    with pytest.raises(RuntimeError, match="the order failed"):
        async with platform.transaction():
            assert await platform.revoke_sessions("7") == [1]
            raise RuntimeError("the order failed")
    assert recorder.revoked == ["7"]
    assert await session_version(platform.engine, "7") == 0


@pytest.mark.parametrize("user_id", ["", "x" * (MAX_USER_ID + 1)])
async def test_a_user_id_that_cannot_be_stored_is_refused(platform: Platform, user_id: str) -> None:
    with pytest.raises(ValueError, match="user id"):
        await platform.revoke_sessions(user_id)


# -- the host's identify_user, asked by a real request ------------------------------------------------


@pytest.fixture
async def who(platform: Platform) -> AsyncIterator[Callable[[str], Any]]:
    """Ask the host's ``identify_user`` who the session cookie ``value`` belongs to, over real HTTP:
    the user, ``None``, or the name of the error it raised."""

    async def identify(request: web.Request) -> web.Response:
        try:
            user = await defaults.identify_user(request)
        except (SessionExpiredError, SessionRevokedError) as exc:
            return web.json_response({"ended": type(exc).__name__, "message": str(exc)})
        return web.json_response({"user": user})

    app = web.Application()
    app[PLATFORM_KEY] = platform
    app.router.add_get("/who", identify)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()

    async def ask(value: str) -> Any:
        headers = {"Cookie": f"{defaults.SESSION_COOKIE}={value}"} if value else {}
        async with session.get(server.make_url("/who"), headers=headers) as response:
            return await response.json()

    try:
        yield ask
    finally:
        await session.close()
        await server.close()


async def test_identify_user_refuses_expired_and_revoked_sessions(platform: Platform, who: Any) -> None:
    secret = platform.settings.secret_key
    valid = await session_cookie(platform, USER)
    assert await who(valid) == {"user": USER}  # the user only: no iat, exp, ver
    assert await who("") == {"user": None}
    assert await who(sign_session("another-secret", USER)) == {"user": None}
    expired = sign_session(secret, USER, ttl=60, issued_at=time.time() - 61)
    assert (await who(expired))["ended"] == "SessionExpiredError"

    await platform.revoke_sessions("7")
    answer = await who(valid)
    assert answer == {"ended": "SessionRevokedError", "message": "the shop session was revoked: sign in again"}
    assert await who(await session_cookie(platform, USER)) == {"user": USER}  # signing in again works
    other = {"id": "8", "role": "admin"}
    assert await who(await session_cookie(platform, other, ttl=5)) == {"user": other}


# -- the CLI ---------------------------------------------------------------------------------------


def read_cookie(result: Any) -> dict[str, Any]:
    """The session a ``session`` command printed, read with the test's secret."""
    lines = assert_ok(result).splitlines()
    assert len(lines) == 1, lines
    session = read_session(SECRET.encode(), lines[0])
    assert session is not None, lines[0]
    return session


def test_session_prints_a_cookie_and_how_to_use_it(cli: Cli) -> None:
    env = {"SHOPOLOGIC_SECRET_KEY": SECRET, "SHOPOLOGIC_SESSION_TTL": "120"}
    result = cli("session", "--user", "7", env=env)
    session = read_cookie(result)
    assert {key: session[key] for key in ("id", "role", "ver")} == {"id": "7", "role": "customer", "ver": 0}
    assert session["exp"] - session["iat"] == 120
    assert "shopologic_session" in result.stderr and "POST /api/v1/authenticate" in result.stderr

    admin = read_cookie(cli("session", "--user", "1", "--role", "admin", "--ttl", "30", env=env))
    assert admin["role"] == "admin" and admin["exp"] - admin["iat"] == 30


def test_session_revoke_without_the_engine(cli: Cli, platform_env: dict[str, str]) -> None:
    env = {"SHOPOLOGIC_SECRET_KEY": SECRET}
    assert assert_ok(cli("session", "--user", "7", "--revoke", env=env)) == "revoked every session of user 7\n"
    assert read_cookie(cli("session", "--user", "7", env=env))["ver"] == 1
    assert read_cookie(cli("session", "--user", "8", env=env))["ver"] == 0


def test_session_revoke_writes_the_engines_disconnect_row(cli: Cli, platform_env: dict[str, str]) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    output = assert_ok(cli("session", "--user", "7", "--revoke"))
    database = platform_env["SHOPOLOGIC_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT id, kind, body, customer_id FROM realtime_outbox").fetchall()
    assert [(kind, json.loads(body), customer) for _, kind, body, customer in rows] == [
        ("disconnect_user", {"user_id": "7"}, "7")
    ]
    assert output == f"revoked every session of user 7 (realtime outbox row {rows[0][0]})\n"


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["session"], {}, "the following arguments are required: --user"),
        (["session", "--user", "7", "--ttl", "0"], {}, "argument --ttl: a whole number of seconds, at least 1"),
        (["session", "--user", "7", "--ttl", "soon"], {}, "argument --ttl"),
        (["session", "--user", "7", "--role", "root"], {}, "argument --role: invalid choice: 'root'"),
        (["session", "--user", "7", "--revoke", "--role", "admin"], {}, "--revoke takes no --role or --ttl"),
        (["session", "--user", ""], {}, "--user: a user id is 1 to 255 characters"),
        (["session", "--user", "x" * 256, "--revoke"], {}, "--user: a user id is 1 to 255 characters"),
        (["session", "--user", "7"], {"SHOPOLOGIC_SESSION_TTL": "soon"}, "SHOPOLOGIC_SESSION_TTL"),
    ],
)
def test_session_mistakes_are_one_line(cli: Cli, args: list[str], env: dict[str, str], fragment: str) -> None:
    assert_one_line_error(cli(*args, env=env), fragment)
