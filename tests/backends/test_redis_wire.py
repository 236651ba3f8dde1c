"""The broker's wire format: a publication survives the round trip, byte for byte, whatever its data holds."""

from __future__ import annotations

import pytest

from websocket_realtime_engine import wire
from websocket_realtime_engine.publication import Publication

PUBLICATIONS = [
    Publication("orders", "order.created", b'{"id":1}', 7, "a1b2c3d4"),
    Publication("private-chat", "message", b'{"t":"hi"}', 12, "00ff00ff", exclude="11.22", user_id="ada"),
    Publication("presence-room", "member_added", b'{"user_id":"ada"}', exclude="1.2"),
    Publication("products", "price", b'{\n  "pretty": "json\\nwith newlines"\n}\n', 1, "e"),
    Publication("caf\u00e9:\u00fcml\u00e4ut", 'quote"d', "\u2603 \u00e9".encode(), 3, "ab", user_id='we"ird\n'),
    Publication("orders", "empty", b"", 2**40, "abcdef01"),
]


@pytest.mark.parametrize("publication", PUBLICATIONS)
def test_a_publication_survives_the_round_trip(publication: Publication) -> None:
    message = wire.encode(publication)
    assert message.count(b"\n") >= 1
    assert wire.decode(message) == publication


@pytest.mark.parametrize("publication", [p for p in PUBLICATIONS if p.epoch])  # the others are encoded whole
def test_a_script_completing_the_tail_makes_the_same_message(publication: Publication) -> None:
    """What the publish script builds once it knows the position is exactly :func:`wire.encode`'s."""
    built = b'[%d,"%s",' % (publication.offset, publication.epoch.encode()) + wire.encode_tail(publication)
    assert built == wire.encode(publication)


def test_decode_reads_from_a_start_index() -> None:
    publication = PUBLICATIONS[1]
    entry = b"1700000000123456 " + wire.encode(publication)
    assert wire.decode(entry, entry.index(b" ") + 1) == publication


def test_the_data_is_kept_as_published() -> None:
    data = b'{"a":[1,2,3],"b":"\xc3\xa9"}'
    decoded = wire.decode(wire.encode(Publication("c", "e", data, 1, "ab")))
    assert decoded.data == data and type(decoded.data) is bytes


@pytest.mark.parametrize(
    "message",
    [b"", b"no header line", b"[1,2,3]\n{}", b'{"a":1}\n{}', b"not json\n{}", b"7\n{}"],
)
def test_a_message_that_is_not_a_publication_raises_value_error(message: bytes) -> None:
    with pytest.raises(ValueError):
        wire.decode(message)
