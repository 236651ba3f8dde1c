"""The platform in process: activation state, the plugin manager, and one plugin's event reaching another."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pluggy
import pytest
from aiohttp.test_utils import TestServer

from shopologic.config import HostSettings
from shopologic.hookspecs import hookimpl
from shopologic.platform import Platform, PluginError, await_all
from tests.conftest import Client, eventually, positioned
from websocket_realtime_engine import PLUGIN_NAME
from websocket_realtime_engine.db.credentials import stored_credentials
from websocket_realtime_engine.web.app import NODE_KEY

EMITTER = "order-emitter"
ENGINE_HOOK_MODULES = (
    f"{PLUGIN_NAME}:hooks/lifecycle.py",
    f"{PLUGIN_NAME}:hooks/commerce.py",
)
EMITTER_HOOK_MODULE = f"{EMITTER}:hooks/engine_events.py"

PlatformFactory = Callable[[], Awaitable[Platform]]


@pytest.fixture
async def open_platform(scoped_env: dict[str, str]) -> AsyncIterator[PlatformFactory]:
    """Open loaded platforms on the test's SQLite file (as a new process would); all closed at the end."""
    opened: list[Platform] = []

    async def open_one() -> Platform:
        platform = Platform(HostSettings.from_env())
        opened.append(platform)
        await platform.load()
        return platform

    yield open_one
    for platform in opened:
        await platform.close()


def registered(platform: Platform) -> set[str]:
    return {name for name, _ in platform.pm.list_name_plugin()}


async def test_a_fresh_platform_knows_every_plugin_and_none_is_active(open_platform: PlatformFactory) -> None:
    platform = await open_platform()
    assert [(manifest.name, manifest.version, active) for manifest, active in platform.plugins()] == [
        (EMITTER, "1.0.0", False),
        (PLUGIN_NAME, "0.1.0", False),
    ]
    assert registered(platform) == {"shopologic.defaults"}


async def test_activation_is_idempotent_and_persists(open_platform: PlatformFactory) -> None:
    platform = await open_platform()
    assert await platform.activate(EMITTER) is True
    assert await platform.activate(EMITTER) is False
    assert EMITTER_HOOK_MODULE in registered(platform)

    reopened = await open_platform()
    assert reopened.active == {EMITTER}
    assert EMITTER_HOOK_MODULE in registered(reopened)
    assert await reopened.activate(EMITTER) is False

    assert await reopened.deactivate(EMITTER) is True
    assert await reopened.deactivate(EMITTER) is False
    assert EMITTER_HOOK_MODULE not in registered(reopened)

    third = await open_platform()
    assert third.active == set()
    assert registered(third) == {"shopologic.defaults"}
    assert dict((m.name, active) for m, active in third.plugins()) == {EMITTER: False, PLUGIN_NAME: False}


async def test_activating_the_engine_migrates_and_creates_credentials(open_platform: PlatformFactory) -> None:
    platform = await open_platform()
    assert await stored_credentials_or_none(platform) is None
    assert await platform.activate(PLUGIN_NAME) is True
    credentials = await stored_credentials(platform.engine)
    assert credentials is not None
    assert credentials["app_id"].isdigit() and len(credentials["app_id"]) == 6
    assert len(credentials["app_key"]) == 20 and len(credentials["app_secret"]) == 40
    assert len(credentials["api_key"]) == 48
    current, head = await platform.migration_status(platform.migration_sources()[0])
    assert current == head is not None

    # deactivating keeps the tables and credentials; activating again keeps the same credentials
    assert await platform.deactivate(PLUGIN_NAME) is True
    assert await platform.activate(PLUGIN_NAME) is True
    assert await stored_credentials(platform.engine) == credentials


async def stored_credentials_or_none(platform: Platform) -> dict[str, str] | None:
    from sqlalchemy.exc import OperationalError

    try:
        return await stored_credentials(platform.engine)
    except OperationalError:  # no realtime_apps table before the first migration
        return None


@pytest.mark.parametrize("action", ["activate", "deactivate"])
async def test_an_unknown_plugin_is_a_plugin_error_naming_the_known_ones(
    open_platform: PlatformFactory, action: str
) -> None:
    platform = await open_platform()
    with pytest.raises(
        PluginError,
        match=r"^unknown plugin 'no-such-plugin' \(known: order-emitter, "
        r"websocket-realtime-engine\)$",
    ):
        await getattr(platform, action)("no-such-plugin")
    assert platform.active == set()


async def test_every_implementation_has_a_spec_when_both_are_active(open_platform: PlatformFactory) -> None:
    first = await open_platform()
    await first.activate(PLUGIN_NAME)
    await first.activate(EMITTER)

    platform = await open_platform()
    assert platform.active == {PLUGIN_NAME, EMITTER}
    assert registered(platform) >= {*ENGINE_HOOK_MODULES, EMITTER_HOOK_MODULE}
    platform.pm.check_pending()  # raises PluginValidationError for an implementation without a spec


async def test_check_pending_catches_an_implementation_without_a_spec(open_platform: PlatformFactory) -> None:
    platform = await open_platform()

    class Misspelled:
        @hookimpl
        def order_creatd(self, order: dict[str, Any]) -> None:
            """A typo: no such hook."""

    plugin = Misspelled()
    platform.pm.register(plugin, name="tests.misspelled")
    try:
        with pytest.raises(pluggy.PluginValidationError, match="order_creatd"):
            platform.pm.check_pending()
    finally:
        platform.pm.unregister(plugin)
    platform.pm.check_pending()


# -- a second plugin's event reaches the engine's subscribers ----------------------------------------


@pytest.fixture
async def both_active(open_platform: PlatformFactory) -> Platform:
    """A platform loaded with the engine and the order-emitter test plugin active."""
    first = await open_platform()
    await first.activate(PLUGIN_NAME)
    await first.activate(EMITTER)
    return await open_platform()


@pytest.fixture
async def engine_server(both_active: Platform) -> AsyncIterator[TestServer]:
    """The engine-only application of the platform, on loopback."""
    server = TestServer(both_active.build_app(only=PLUGIN_NAME), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def connect(session: aiohttp.ClientSession, server: TestServer) -> Client:
    client = Client(await session.ws_connect(server.make_url("/socket")))
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    return client


async def test_an_order_event_from_a_second_plugin_reaches_a_subscriber(
    both_active: Platform, engine_server: TestServer
) -> None:
    async with aiohttp.ClientSession() as session:
        client = await connect(session, engine_server)
        subscribed = await client.subscribe("orders")
        assert positioned(subscribed) == {"event": "subscribed", "channel": "orders", "data": {}}

        # what the other plugin does: a direct call through the host's hook relay
        order = {
            "id": 1001,
            "number": "SO-1001",
            "status": "paid",
            "total": "59.80",
            "customer_id": 7,
            "email": "ann@example.com",
            "items": [{"product_id": 3, "name": "Mug", "quantity": 2, "price": "29.90"}],
        }
        await await_all(both_active.hook.order_status_changed(order=order, previous_status="pending"))

        frame = await client.expect("order.status_changed")
        public_summary = {
            "id": "1001",
            "number": "SO-1001",
            "status": "paid",
            "total": "59.80",
            "currency": "EUR",
            "item_count": 2,
        }
        assert positioned(frame) == {
            "event": "order.status_changed",
            "channel": "orders",
            "data": {"order": public_summary, "previous_status": "pending"},
        }
        assert "customer_id" not in frame["data"]["order"] and "email" not in frame["data"]["order"]
        await client.nothing(0.2)  # one event: one frame on the public channel
        await client.ws.close()


async def test_one_order_created_reaches_the_hooks_commerce_of_both_plugins(
    both_active: Platform, engine_server: TestServer
) -> None:
    emitter_commerce = both_active.pm.get_plugin(f"{EMITTER}:hooks/commerce.py")
    engine_commerce = both_active.pm.get_plugin(f"{PLUGIN_NAME}:hooks/commerce.py")
    assert emitter_commerce is not engine_commerce
    emitter_commerce.received.clear()
    async with aiohttp.ClientSession() as session:
        client = await connect(session, engine_server)
        await client.subscribe("orders")
        await await_all(both_active.hook.order_created(order={"id": 1002, "status": "paid", "total": "5.00"}))
        assert (await client.expect("order.created"))["data"]["order"]["id"] == "1002"  # the engine's
        orders = [entry for entry in emitter_commerce.received if entry[0] == "order_created"]
        assert orders == [("order_created", {"order_id": "1002"})]  # the test plugin's
        await client.ws.close()


async def test_the_engine_tells_a_second_plugin_about_connections(
    both_active: Platform, engine_server: TestServer
) -> None:
    emitter = both_active.pm.get_plugin(EMITTER_HOOK_MODULE)
    emitter.received.clear()
    node_id = engine_server.app[NODE_KEY].settings.node_id
    async with aiohttp.ClientSession() as session:
        client = await connect(session, engine_server)
        opened = ("connection_opened", {"connection_id": client.connection_id, "node_id": node_id})
        await eventually(lambda: opened in emitter.received, timeout=5.0)
        await client.ws.close()


async def test_a_failing_async_implementation_stops_the_call_and_leaves_no_coroutine_unawaited() -> None:
    ran: list[str] = []

    async def implementation(name: str, fails: bool = False) -> str:
        ran.append(name)
        if fails:
            raise RuntimeError(f"{name} failed")
        return name

    assert await await_all([implementation("a"), "sync", implementation("b")]) == ["a", "sync", "b"]
    ran.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [implementation("first"), implementation("second", fails=True), implementation("third")]
        with pytest.raises(RuntimeError, match="second failed"):
            await await_all(results)
        del results
        gc.collect()  # a coroutine left unawaited warns when it is collected
    assert ran == ["first", "second"]  # the third never ran
    assert not [w for w in caught if "never awaited" in str(w.message)]
