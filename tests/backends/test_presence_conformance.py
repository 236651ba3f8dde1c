"""The presence conformance suite: every backend counts users, not connections, within the limit.

Only the :class:`PresenceStore` interface is used, so a shared store such as Redis passes the same tests.
"""

from __future__ import annotations

import asyncio

from websocket_realtime_engine.presence.base import Joined, PresenceStore, UserInfo

LIMIT = 100


async def join(
    presence: PresenceStore,
    connection_id: str,
    user_id: str,
    channel: str = "presence-room",
    node_id: str = "node-a",
    limit: int = LIMIT,
    user_info: UserInfo = None,
) -> Joined:
    """Join ``channel`` with the suite's defaults for what a test does not care about."""
    return await presence.join(channel, connection_id, user_id, user_info, node_id, limit)


async def test_concurrent_joins_at_the_limit_never_exceed_it(presence: PresenceStore) -> None:
    joined = await asyncio.gather(*(join(presence, f"c{n}", f"u{n}", limit=10) for n in range(50)))
    assert joined.count(Joined.FIRST) == 10 and joined.count(Joined.FULL) == 40
    assert await presence.count("presence-room") == 10
    admitted = {f"u{n}" for n, result in enumerate(joined) if result is Joined.FIRST}
    assert set(await presence.members("presence-room")) == admitted


async def test_a_user_on_two_connections_is_one_member(presence: PresenceStore) -> None:
    assert await join(presence, "c1", "alice", user_info={"name": "Alice"}) is Joined.FIRST
    assert await join(presence, "c2", "alice", user_info={"name": "Alice"}) is Joined.AGAIN
    assert await presence.count("presence-room") == 1
    assert await presence.members("presence-room") == {"alice": {"name": "Alice"}}
    assert await presence.leave("presence-room", "c1") is None
    assert await presence.count("presence-room") == 1
    assert await presence.leave("presence-room", "c2") == "alice"
    assert await presence.count("presence-room") == 0
    assert await presence.members("presence-room") == {}


async def test_a_member_may_join_again_on_a_full_channel(presence: PresenceStore) -> None:
    assert [await join(presence, f"c{n}", f"u{n}", limit=2) for n in range(3)] == [
        Joined.FIRST,
        Joined.FIRST,
        Joined.FULL,
    ]
    assert await join(presence, "c9", "u0", limit=2) is Joined.AGAIN
    assert await presence.count("presence-room") == 2


async def test_a_full_join_changes_nothing(presence: PresenceStore) -> None:
    await join(presence, "c1", "alice", limit=1)
    assert await join(presence, "c2", "bob", limit=1) is Joined.FULL
    assert await presence.members("presence-room") == {"alice": None}
    assert await presence.leave("presence-room", "c2") is None
    assert await presence.count("presence-room") == 1


async def test_a_leave_frees_a_place(presence: PresenceStore) -> None:
    await join(presence, "c1", "alice", limit=1)
    assert await presence.leave("presence-room", "c1") == "alice"
    assert await join(presence, "c2", "bob", limit=1) is Joined.FIRST


async def test_members_map_user_ids_to_the_first_connections_info(presence: PresenceStore) -> None:
    await join(presence, "c1", "alice", user_info={"name": "Alice", "roles": ["admin"]})
    await join(presence, "c2", "alice", user_info={"name": "Alice on her phone"})
    await join(presence, "c3", "bob")
    assert await presence.members("presence-room") == {"alice": {"name": "Alice", "roles": ["admin"]}, "bob": None}
    assert await presence.members("presence-elsewhere") == {}


async def test_leave_of_an_unknown_connection_is_none(presence: PresenceStore) -> None:
    await join(presence, "c1", "alice")
    assert await presence.leave("presence-room", "c2") is None
    assert await presence.leave("presence-elsewhere", "c1") is None
    assert await presence.leave("presence-room", "c1") == "alice"
    assert await presence.leave("presence-room", "c1") is None


async def test_channels_are_independent(presence: PresenceStore) -> None:
    await join(presence, "c1", "alice", channel="presence-a", limit=1)
    assert await join(presence, "c1", "bob", channel="presence-b", limit=1) is Joined.FIRST
    assert await join(presence, "c2", "alice", channel="presence-b", limit=1) is Joined.FULL
    assert await presence.leave("presence-a", "c1") == "alice"
    assert await presence.members("presence-b") == {"bob": None}


async def test_remove_node_removes_exactly_that_nodes_members(presence: PresenceStore) -> None:
    await join(presence, "a1", "alice", node_id="node-a")
    await join(presence, "a2", "bob", node_id="node-a")
    await join(presence, "a3", "alice", channel="presence-other", node_id="node-a")
    await join(presence, "b1", "bob", node_id="node-b")  # bob stays through node-b
    await join(presence, "b2", "carol", node_id="node-b")
    removed = await presence.remove_node("node-a")
    assert sorted(removed) == [("presence-other", "alice"), ("presence-room", "alice")]
    assert await presence.members("presence-room") == {"bob": None, "carol": None}
    assert await presence.count("presence-other") == 0
    assert await presence.leave("presence-room", "a2") is None
    assert await presence.remove_node("node-a") == []
    assert await presence.leave("presence-room", "b1") == "bob"
    assert sorted(await presence.remove_node("node-b")) == [("presence-room", "carol")]
    assert await presence.count("presence-room") == 0


async def test_remove_node_of_an_unknown_node_is_empty(presence: PresenceStore) -> None:
    await join(presence, "a1", "alice", node_id="node-a")
    assert await presence.remove_node("node-z") == []
    assert await presence.count("presence-room") == 1
