"""Revoking a user's sessions in a cluster: a page's WebSocket on one node, its private channel
signed through its shop session by another (a load balancer in between); two real nodes in this
process joined by the real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from tests.backends.conftest import REDIS_URL, redis_connection
from tests.conftest import EngineFactory, make_settings
from websocket_realtime_engine.web.authenticate import HostAccess


async def test_a_connection_whose_channel_another_node_signed_for_a_session_is_the_users(
    engine_factory: EngineFactory,
) -> None:
    """The page's WebSocket is on node A, its signature came from node B (a load balancer in
    between): once it subscribes, a disconnect of the user from any node ends it."""

    def identify(request: web.Request) -> dict[str, Any] | None:
        return {"id": "7", "role": "customer"} if request.cookies.get("session") == "cust-7" else None

    def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
        return user is not None and channel == f"private-customer.{user['id']}"

    access = HostAccess(identify=identify, authorize=authorize)
    async with redis_connection() as (_, prefix):
        engines = [
            await engine_factory(make_settings(node_id=name, redis_url=REDIS_URL, redis_prefix=prefix), access=access)
            for name in ("node-a", "node-b")
        ]
        node_a, node_b = engines
        page = await node_a.connect()
        body = {"connection_id": page.connection_id, "channel": "private-customer.7"}
        async with node_b.session.post(
            node_b.url("/api/v1/authenticate"), json=body, headers={"Cookie": "session=cust-7"}
        ) as response:
            assert response.status == 200
            signed = await response.json()
        assert (await page.subscribe("private-customer.7", auth=signed["auth"]))["event"] == "subscribed"
        bystander = await node_a.connect()
        closed = 0
        for _ in range(50):  # the vouch crosses the broker; the cluster state is written behind
            closed = await node_b.node.disconnect_user("7")
            if closed:
                break
            await asyncio.sleep(0.05)
        assert closed == 1
        message = await page.ws.receive(timeout=3)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4009)
        assert (await bystander.request({"event": "ping"}))["event"] == "pong"
