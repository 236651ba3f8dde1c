"""Server-Sent Events ids, sans-I/O: what an id holds, its size limit, and what is refused."""

from __future__ import annotations

import pytest

from websocket_realtime_engine.protocol import sse
from websocket_realtime_engine.publication import StreamPosition


def test_event_ids_round_trip_and_refuse_what_the_engine_never_wrote() -> None:
    positions = {sse.channel_key(f"channel-{n}"): StreamPosition(n * 1000, "9f3c2a41") for n in range(150)}
    entries = [item for key, position in positions.items() if (item := sse.entry(key, position))]
    text = sse.event_id(entries)
    assert len(text) <= sse.MAX_ID_LENGTH and text.startswith("1~")
    parsed = sse.parse_event_id(text)
    assert list(parsed) == list(positions)[: len(parsed)] and len(parsed) > 100  # what fits, in order
    assert all(parsed[key] == positions[key] for key in parsed)
    assert sse.event_id([]) == "1" and sse.parse_event_id("1") == {}
    assert sse.entry("AAAAAAAA", StreamPosition(1, "not an epoch")) is None
    for bad in ("2~AAAAAAAA.1.e", "1~AAAA.1.e", "1~AAAAAAAA.01.e", "1~AAAAAAAA.1.", "1~" + "A" * 5000):
        with pytest.raises(sse.InvalidEventIdError):
            sse.parse_event_id(bad)
