"""The cluster state conformance suite: connections, subscriptions, counts and transitions.

Only the :class:`ClusterState` interface is used, so the memory and Redis stores pass the same tests.
"""

from __future__ import annotations

import asyncio

from websocket_realtime_engine.registry.cluster import ClusterState, ConnectionRecord

AT = 1700000000.25


def open_connections(state: ClusterState, node_id: str, *ids: str) -> None:
    for connection_id in ids:
        state.opened(node_id, connection_id, AT, "10.0.0.1")


async def ids(state: ClusterState, channel: str | None = None, user_id: str | None = None) -> list[str]:
    page = await state.connections(channel, user_id)
    assert page.count == len(page.connections)
    return [record.id for record in page.connections]


async def test_an_opened_connection_is_listed_with_its_record(cluster_state: ClusterState) -> None:
    cluster_state.opened("node-a", "1.1", AT, "10.0.0.1")
    cluster_state.signed_in("1.1", "ada")
    assert await cluster_state.subscribed("1.1", "orders") is True
    assert await cluster_state.subscribed("1.1", "presence-room", "ada-member") is True
    expected = ConnectionRecord("1.1", "node-a", AT, "10.0.0.1", "ada", {"orders": None, "presence-room": "ada-member"})
    assert await cluster_state.connection("1.1") == expected
    assert (await cluster_state.connections()).connections == [expected]
    assert expected.describe() == {
        "id": "1.1",
        "user_id": "ada",
        "channels": ["orders", "presence-room"],
        "connected_at": AT,
        "node": "node-a",
    }
    assert await cluster_state.connection("9.9") is None


async def test_occupied_and_vacated_once_per_transition(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "a1", "a2")
    open_connections(cluster_state, "node-b", "b1")
    assert await cluster_state.subscribed("a1", "orders") is True
    assert await cluster_state.subscribed("b1", "orders") is False
    assert await cluster_state.subscribed("a2", "orders") is False
    assert await cluster_state.subscribed("a2", "orders") is False  # again: still three
    assert await cluster_state.count("orders") == 3
    assert await cluster_state.unsubscribed("a1", "orders") is False
    assert await cluster_state.unsubscribed("a1", "orders") is False  # not subscribed any more
    assert await cluster_state.unsubscribed("b1", "orders") is False
    assert await cluster_state.unsubscribed("a2", "orders") is True
    assert await cluster_state.count("orders") == 0
    assert await cluster_state.channels() == {}
    assert await cluster_state.subscribed("b1", "orders") is True  # occupied again


async def test_concurrent_subscribes_occupy_a_channel_once(cluster_state: ClusterState) -> None:
    names = [f"c{n}" for n in range(40)]
    open_connections(cluster_state, "node-a", *names)
    occupied = await asyncio.gather(*(cluster_state.subscribed(name, "orders") for name in names))
    assert occupied.count(True) == 1
    vacated = await asyncio.gather(*(cluster_state.unsubscribed(name, "orders") for name in names))
    assert vacated.count(True) == 1


async def test_channels_and_counts(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "a1", "a2")
    await cluster_state.subscribed("a1", "orders")
    await cluster_state.subscribed("a2", "orders")
    await cluster_state.subscribed("a2", "product:1")
    assert await cluster_state.channels() == {"orders": 2, "product:1": 1}
    assert await cluster_state.count("orders") == 2
    assert await cluster_state.count("nobody") == 0


async def test_a_closed_connection_leaves_everything_and_says_what_it_vacated(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "a1", "a2")
    cluster_state.signed_in("a1", "ada")
    await cluster_state.subscribed("a1", "orders")
    await cluster_state.subscribed("a1", "products")
    await cluster_state.subscribed("a2", "orders")
    assert await cluster_state.closed("a1") == ["products"]
    assert await cluster_state.closed("a1") == []
    assert await cluster_state.connection("a1") is None
    assert await ids(cluster_state, user_id="ada") == []
    assert await cluster_state.channels() == {"orders": 1}
    assert await ids(cluster_state) == ["a2"]


async def test_nothing_is_recorded_for_a_connection_that_is_not_open(cluster_state: ClusterState) -> None:
    assert await cluster_state.subscribed("ghost", "orders") is False
    cluster_state.signed_in("ghost", "ada")
    assert await cluster_state.channels() == {}
    assert await ids(cluster_state) == []
    open_connections(cluster_state, "node-a", "a1")
    await cluster_state.closed("a1")
    assert await cluster_state.subscribed("a1", "orders") is False  # closed while subscribing
    assert await cluster_state.connection("a1") is None


async def test_filters_by_channel_and_user(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "a1", "a2", "a3")
    open_connections(cluster_state, "node-b", "b1")
    cluster_state.signed_in("a1", "ada")
    await cluster_state.subscribed("a1", "orders")
    await cluster_state.subscribed("b1", "orders")
    await cluster_state.subscribed("a2", "presence-room", "ada")  # a presence member as ada
    await cluster_state.subscribed("a3", "orders")
    assert await ids(cluster_state, channel="orders") == ["a1", "a3", "b1"]
    assert await ids(cluster_state, user_id="ada") == ["a1", "a2"]
    assert await ids(cluster_state, channel="orders", user_id="ada") == ["a1"]
    assert await ids(cluster_state, channel="nobody") == []
    await cluster_state.unsubscribed("a2", "presence-room")
    assert await ids(cluster_state, user_id="ada") == ["a1"]


async def test_a_user_stays_while_any_role_holds_it(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "a1")
    cluster_state.signed_in("a1", "ada")
    await cluster_state.subscribed("a1", "presence-room", "ada")
    await cluster_state.unsubscribed("a1", "presence-room")
    assert await ids(cluster_state, user_id="ada") == ["a1"]  # still signed in as ada
    await cluster_state.subscribed("a1", "presence-other", "bob")
    cluster_state.signed_in("a1", "carol")
    assert await ids(cluster_state, user_id="ada") == []
    assert await ids(cluster_state, user_id="bob") == ["a1"]
    assert await ids(cluster_state, user_id="carol") == ["a1"]


async def test_the_limit_takes_the_first_by_id_and_counts_all(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "c3", "c1", "c4", "c2")
    page = await cluster_state.connections(limit=2)
    assert [record.id for record in page.connections] == ["c1", "c2"] and page.count == 4
    assert page.next == "c2"


async def walk(state: ClusterState, limit: int, **query: str) -> list[list[str]]:
    """Every page of a query, following ``next``; each page's count is that of the whole query."""
    pages, after, total = [], None, None
    while True:
        page = await state.connections(limit=limit, after=after, **query)
        pages.append([record.id for record in page.connections])
        assert total is None or page.count == total
        total, after = page.count, page.next
        if after is None:
            assert sum(len(ids) for ids in pages) == total
            return pages


async def test_pages_follow_next_to_the_end_without_gaps_or_repeats(cluster_state: ClusterState) -> None:
    names = [f"c{n:02d}" for n in range(7)]
    open_connections(cluster_state, "node-a", *reversed(names))
    for name in names[::2]:
        await cluster_state.subscribed(name, "orders")
        cluster_state.signed_in(name, "ada")
    assert await walk(cluster_state, 3) == [names[0:3], names[3:6], names[6:7]]
    assert await walk(cluster_state, 7) == [names]
    assert await walk(cluster_state, 2, channel="orders") == [["c00", "c02"], ["c04", "c06"]]
    assert await walk(cluster_state, 3, user_id="ada") == [["c00", "c02", "c04"], ["c06"]]
    assert await walk(cluster_state, 1, user_id="ada", channel="orders") == [["c00"], ["c02"], ["c04"], ["c06"]]
    later = await cluster_state.connections(after="c03", limit=10)
    assert [record.id for record in later.connections] == names[4:] and later.count == 7 and later.next is None
    assert (await cluster_state.connections(after="zz")).connections == []


async def test_remove_node_forgets_its_connections_only(cluster_state: ClusterState) -> None:
    open_connections(cluster_state, "node-a", "a1", "a2")
    open_connections(cluster_state, "node-b", "b1")
    cluster_state.signed_in("a1", "ada")
    await cluster_state.subscribed("a1", "orders")
    await cluster_state.subscribed("a2", "orders")
    await cluster_state.subscribed("a2", "products")
    await cluster_state.subscribed("b1", "products")
    await cluster_state.subscribed("a1", "presence-room", "ada")
    assert sorted(await cluster_state.remove_node("node-a")) == ["orders", "presence-room"]
    assert await ids(cluster_state) == ["b1"]
    assert await ids(cluster_state, user_id="ada") == []
    assert await cluster_state.channels() == {"products": 1}
    assert await cluster_state.remove_node("node-a") == []
    assert await cluster_state.remove_node("node-unknown") == []
