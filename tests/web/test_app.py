"""The engine mounted in someone else's application: its middleware wraps its own routes only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import CREDENTIALS, make_settings
from websocket_realtime_engine.web.app import add_routes, build_node, engine_service
from websocket_realtime_engine.web.authenticate import HostAccess


async def host_orders(request: web.Request) -> web.Response:
    raise web.HTTPForbidden(text="the host says no")


@pytest.fixture
async def mounted() -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    """A host application with a route of its own under /api/, and the engine added to it."""
    app = web.Application()
    app.router.add_get("/api/shop/orders", host_orders)
    node = build_node(make_settings(), None, None)
    add_routes(app, node, HostAccess())
    app.cleanup_ctx.append(engine_service(node, None))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    yield server, session
    await session.close()
    await server.close()


async def test_the_hosts_routes_are_not_wrapped_by_the_engine(
    mounted: tuple[TestServer, aiohttp.ClientSession],
) -> None:
    server, session = mounted
    async with session.get(server.make_url("/api/shop/orders")) as response:
        assert response.status == 403
        assert response.content_type == "text/plain" and await response.text() == "the host says no"
    async with session.get(server.make_url("/elsewhere")) as response:
        assert response.status == 404 and response.content_type == "text/plain"


async def test_the_engines_routes_keep_their_urls_key_check_and_json_errors(
    mounted: tuple[TestServer, aiohttp.ClientSession],
) -> None:
    server, session = mounted
    async with session.get(server.make_url("/api/v1/status")) as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "unauthorized"
    headers = {"Authorization": f"Bearer {CREDENTIALS['api_key']}"}
    async with session.get(server.make_url("/api/v1/status"), headers=headers) as response:
        assert response.status == 200 and (await response.json())["node_id"] == "test-node"
    async with session.get(server.make_url("/api/v1/no-such-route"), headers=headers) as response:
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
    async with session.get(server.make_url("/api/v1/openapi.yaml")) as response:
        assert response.status == 200, "public without a key"
    ws = await session.ws_connect(server.make_url("/socket"))
    assert (await ws.receive_json())["event"] == "connected"
    await ws.close()
