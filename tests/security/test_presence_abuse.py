"""Presence as an amplifier: re-subscribing, reading the member list and churning are bounded."""

from __future__ import annotations

import json

from tests.conftest import Client, Engine, EngineFactory, make_settings


async def join(client: Client, channel: str, user_id: str, info_bytes: int = 0) -> dict:
    data = json.dumps({"user_id": user_id, "user_info": {"bio": "x" * info_bytes}}, separators=(",", ":"))
    return await client.subscribe(channel, auth=client.auth(channel, data), channel_data=data)


async def frames_within(client: Client, wait: float = 0.3) -> list[dict]:
    frames = []
    try:
        while True:
            frames.append(await client.recv(wait))
    except TimeoutError:
        return frames


async def test_subscribing_again_sends_no_member_list(engine: Engine) -> None:
    others = [await engine.connect() for _ in range(20)]
    for number, other in enumerate(others):
        await join(other, "presence-room", f"user-{number}", info_bytes=1000)
    storm = await engine.connect()
    first = await join(storm, "presence-room", "storm")
    assert first["data"]["count"] == 21, "the first subscribed carries the members"
    for _ in range(200):
        again = await storm.subscribe("presence-room")  # nothing else needed: it is on the channel
        assert again["event"] == "subscribed" and again["data"] == {}, "no member list again"
        assert again["offset"] == first["offset"] and again["epoch"] == first["epoch"]
    watcher = others[0]
    added = [f for f in await frames_within(watcher) if f["event"] == "member_added"]
    assert [f["data"]["user_id"] for f in added if f["data"]["user_id"] == "storm"] == ["storm"], "told once"


async def test_reading_the_member_list_is_limited(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(client_presence_per_minute=60.0))
    client = await engine.connect()
    await join(client, "presence-room", "ada")  # one turn of the burst of 10
    replies = [await client.request({"event": "presence", "channel": "presence-room"}) for _ in range(15)]
    members = [r for r in replies if r["event"] == "presence"]
    limited = [r for r in replies if r["event"] == "error"]
    assert 9 <= len(members) <= 10 and members[0]["data"]["count"] == 1, "the burst, and a refill at most"
    assert len(limited) == 15 - len(members) and all(r["data"]["code"] == 4029 for r in limited)
    assert "presence joins or member lists per minute" in limited[0]["data"]["message"]
    assert (await client.request({"event": "ping"}))["event"] == "pong", "the connection stays open"


async def test_presence_churn_by_one_connection_is_limited(engine: Engine) -> None:
    watcher = await engine.connect()
    await join(watcher, "presence-room", "watcher")
    churner = await engine.connect()
    refused = 0
    for _ in range(30):
        reply = await join(churner, "presence-room", "churner", info_bytes=1000)
        if reply["event"] == "error":
            assert reply["data"]["code"] == 4029
            refused += 1
            continue
        await churner.request({"event": "unsubscribe", "channel": "presence-room"})
    assert 18 <= refused <= 20, "a burst of 10 joins, then one a second"
    frames = await frames_within(watcher)
    assert sum(f["event"] == "member_added" for f in frames) == 30 - refused
    assert sum(f["event"] == "member_removed" for f in frames) == 30 - refused
