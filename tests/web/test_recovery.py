"""History and recovery on one node, with real clients: offsets, epochs, ``since`` and ``recovered``."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Client, Engine, EngineFactory, make_settings
from tests.web.test_hardening import join, member_data


async def publish(engine: Engine, channel: str, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        await engine.node.publish([channel], "tick", {"n": number})


async def receive(client: Client, count: int) -> list[dict[str, Any]]:
    return [await client.expect("tick") for _ in range(count)]


async def test_frames_carry_the_protocol_version_and_stream_positions(engine: Engine) -> None:
    client = await engine.connect()
    subscribed = await client.subscribe("orders")
    assert subscribed["event"] == "subscribed" and subscribed["offset"] == 0 and subscribed["epoch"]
    assert "recovered" not in subscribed
    await publish(engine, "orders", 2)
    first, second = await receive(client, 2)
    assert (first["offset"], second["offset"]) == (1, 2)
    assert first["epoch"] == second["epoch"] == subscribed["epoch"]
    late = await engine.connect()
    assert (await late.subscribe("orders"))["offset"] == 2, "subscribed carries the channel's current position"


async def test_the_connected_frame_says_which_protocol_version(engine: Engine) -> None:
    ws = await engine.session.ws_connect(engine.url("/socket"))
    hello = await Client(ws).expect("connected")
    await ws.close()
    assert hello["data"]["protocol"] == 2


async def test_reconnecting_with_the_last_offset_gets_exactly_what_was_missed(engine: Engine) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    await publish(engine, "orders", 3)
    seen = await receive(client, 3)
    last = {"offset": seen[-1]["offset"], "epoch": seen[-1]["epoch"]}
    await client.ws.close()
    await publish(engine, "orders", 4, start=3)  # missed while away

    again = await engine.connect()
    subscribed = await again.subscribe("orders", since=last)
    assert subscribed["recovered"] is True
    assert (subscribed["offset"], subscribed["epoch"]) == (7, last["epoch"])
    missed = await receive(again, 4)
    assert [frame["data"]["n"] for frame in missed] == [3, 4, 5, 6]
    assert [frame["offset"] for frame in missed] == [4, 5, 6, 7]
    await again.nothing()  # no duplicates
    await publish(engine, "orders", 1, start=7)
    assert (await again.expect("tick"))["offset"] == 8, "live delivery goes on after the recovery"


async def test_since_at_the_current_position_recovers_nothing_and_says_so(engine: Engine) -> None:
    client = await engine.connect()
    position = await client.subscribe("orders")
    await publish(engine, "orders", 1)
    frame = await client.expect("tick")
    other = await engine.connect()
    subscribed = await other.subscribe("orders", since={"offset": frame["offset"], "epoch": position["epoch"]})
    assert subscribed["recovered"] is True and subscribed["offset"] == 1
    await other.nothing()


async def test_an_unknown_epoch_is_not_recovered(engine: Engine) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    await publish(engine, "orders", 2)
    await receive(client, 2)
    other = await engine.connect()
    subscribed = await other.subscribe("orders", since={"offset": 1, "epoch": "not-this-stream"})
    assert subscribed["recovered"] is False, "the client must reload its state"
    assert subscribed["offset"] == 2 and subscribed["epoch"] != "not-this-stream"
    await other.nothing()


async def test_a_gap_beyond_the_history_is_not_recovered(engine_factory: EngineFactory) -> None:
    engine: Engine = await engine_factory(make_settings(history_size=3))
    client = await engine.connect()
    subscribed = await client.subscribe("orders")
    epoch = subscribed["epoch"]
    await publish(engine, "orders", 1)
    await receive(client, 1)
    await client.ws.close()
    await publish(engine, "orders", 5, start=1)  # offsets 2-6; the history keeps 4-6 only
    again = await engine.connect()
    gap = await again.subscribe("orders", since={"offset": 1, "epoch": epoch})
    assert gap["recovered"] is False and gap["offset"] == 6
    await again.nothing()
    # within the history it still works
    third = await engine.connect()
    kept = await third.subscribe("orders", since={"offset": 3, "epoch": epoch})
    assert kept["recovered"] is True
    assert [frame["offset"] for frame in await receive(third, 3)] == [4, 5, 6]


async def test_an_expired_history_is_not_recovered(engine_factory: EngineFactory) -> None:
    engine: Engine = await engine_factory(make_settings(history_ttl=0.3))
    client = await engine.connect()
    await client.subscribe("orders")
    await publish(engine, "orders", 2)
    seen = await receive(client, 2)
    await client.ws.close()
    await asyncio.sleep(0.5)
    again = await engine.connect()
    subscribed = await again.subscribe("orders", since={"offset": 1, "epoch": seen[0]["epoch"]})
    assert subscribed["recovered"] is False
    assert subscribed["epoch"] != seen[0]["epoch"], "a lost stream starts again with a new epoch"


async def test_publications_during_a_slow_recovery_arrive_once_and_in_order(engine: Engine) -> None:
    """The subscription goes live only after the history read: what is published meanwhile is
    caught up, never lost between the two and never sent twice."""
    first = await engine.connect()
    subscribed = await first.subscribe("orders")
    await publish(engine, "orders", 2)
    await receive(first, 2)
    broker = engine.node.broker
    fast_subscribe = broker.subscribe

    async def slow_subscribe(channel: str) -> None:
        await asyncio.sleep(0.3)
        await fast_subscribe(channel)

    await first.ws.close()  # the node unsubscribes the channel from the broker
    broker.subscribe = slow_subscribe  # type: ignore[method-assign]
    watcher = await engine.connect()
    since = {"offset": 1, "epoch": subscribed["epoch"]}
    await watcher.send({"event": "subscribe", "channel": "orders", "since": since})
    publishing = asyncio.create_task(publish(engine, "orders", 20, start=2))
    frames = [await watcher.recv() for _ in range(20)]
    await publishing
    assert frames[0]["event"] == "subscribed" and frames[0]["recovered"] is True
    offsets = [frame["offset"] for frame in frames[1:]]
    assert offsets == list(range(2, 2 + len(offsets)))
    rest = [frame["offset"] for frame in await receive(watcher, 22 - offsets[-1])]
    assert offsets + rest == list(range(2, 23))
    await watcher.nothing()


async def test_a_malformed_since_is_a_clear_error_and_the_connection_stays(engine: Engine) -> None:
    client = await engine.connect()
    for since in ({"offset": -1, "epoch": "x"}, {"offset": 1}, "1", {"offset": True, "epoch": "x"}):
        error = await client.subscribe("orders", since=since, id=9)
        assert error["event"] == "error" and error["data"]["code"] == 4000 and error["id"] == 9
        assert "since" in error["data"]["message"]
    assert (await client.subscribe("orders"))["event"] == "subscribed"


async def test_presence_changes_are_not_kept_in_the_history(engine: Engine) -> None:
    watcher = await engine.connect()
    subscribed = await join(watcher, "presence-room", "ada")
    other = await engine.connect()
    await join(other, "presence-room", "bob")
    added = await watcher.expect("member_added")
    assert "offset" not in added
    again = await engine.connect()
    data = member_data("cy")
    since = {"offset": subscribed["offset"], "epoch": subscribed["epoch"]}
    signature = again.auth("presence-room", data)
    answer = await again.subscribe("presence-room", auth=signature, channel_data=data, since=since)
    assert answer["recovered"] is True and answer["data"]["count"] == 3
    await again.nothing()  # bob's arrival is in the members list, not replayed
