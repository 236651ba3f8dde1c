"""The host's ``GET /health``: the active plugins' ``health_checks``, 503 when one fails.

Plugins are small classes registered for one test and unregistered in ``finally`` (as datasette
tests its hooks); the engine's own checks are seen through the platform's application.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from shopologic import defaults
from shopologic.config import HostSettings
from shopologic.hookspecs import hookimpl
from shopologic.platform import Platform
from tests.conftest import engine_hook_module
from websocket_realtime_engine import PLUGIN_NAME, runtime


class Healthy:
    @hookimpl
    def health_checks(self, platform: Any) -> dict[str, str]:
        return {"healthy.cache": "ok"}


class AsyncHealthy:
    @hookimpl
    async def health_checks(self, platform: Any) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"async.queue": "ok"}


class NothingToCheck:
    @hookimpl
    def health_checks(self, platform: Any) -> None:
        return None


class Failing:
    @hookimpl
    def health_checks(self, platform: Any) -> dict[str, str]:
        return {"failing.search": "unreachable: connection refused"}


class Raising:
    @hookimpl
    def health_checks(self, platform: Any) -> dict[str, str]:
        raise RuntimeError("boom")


class Slow:
    @hookimpl
    async def health_checks(self, platform: Any) -> dict[str, str]:
        await asyncio.sleep(10)
        return {}


@pytest.fixture
async def platform(scoped_env: dict[str, str]) -> AsyncIterator[Platform]:
    """A loaded platform with no active plugin."""
    loaded = Platform(HostSettings.from_env())
    await loaded.load()
    yield loaded
    await loaded.close()


@pytest.fixture
def registered(platform: Platform) -> Iterator[Any]:
    """Register plugin objects under their class names for one test; unregistered afterwards."""
    plugins: list[Any] = []

    def register(*objects: Any) -> None:
        for plugin in objects:
            platform.pm.register(plugin, name=type(plugin).__name__)
            plugins.append(plugin)

    try:
        yield register
    finally:
        for plugin in plugins:
            platform.pm.unregister(plugin)


async def get_health(app_platform: Platform) -> tuple[int, Any]:
    server = TestServer(app_platform.build_app(), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, session.get(server.make_url("/health")) as response:
            return response.status, await response.json()
    finally:
        await server.close()


async def test_with_no_checks_the_platform_is_healthy(platform: Platform) -> None:
    assert await get_health(platform) == (200, {"status": "ok", "platform": "0.1.0", "checks": {}})


async def test_every_plugins_checks_are_gathered(platform: Platform, registered: Any) -> None:
    registered(Healthy(), AsyncHealthy(), NothingToCheck())
    status, body = await get_health(platform)
    assert status == 200 and body["checks"] == {"healthy.cache": "ok", "async.queue": "ok"}


async def test_one_failing_check_makes_it_503_with_every_check(platform: Platform, registered: Any) -> None:
    registered(Healthy(), Failing())
    status, body = await get_health(platform)
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"] == {"healthy.cache": "ok", "failing.search": "unreachable: connection refused"}


async def test_a_plugin_that_raises_or_hangs_fails_under_its_name(
    platform: Platform, registered: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "HEALTH_CHECK_TIMEOUT", 0.1)
    registered(Healthy(), Raising(), Slow())
    checks = await defaults.collect_health(platform)
    assert checks == {
        "healthy.cache": "ok",
        "Raising": "failed: RuntimeError: boom",
        "Slow": "failed: no answer within 0.1 s",
    }


async def test_the_engine_reports_its_node_database_and_broker(platform: Platform) -> None:
    await platform.activate(PLUGIN_NAME)
    status, body = await get_health(platform)
    assert status == 200
    assert body["checks"] == {"realtime.node": "ok", "realtime.database": "ok", "realtime.broker": "ok"}


async def test_the_engine_without_a_running_node_is_not_healthy(platform: Platform) -> None:
    lifecycle = engine_hook_module("hooks/lifecycle.py")
    assert runtime.local_node() is None
    assert await lifecycle.health_checks(platform=platform) == {"realtime.node": "not running"}
