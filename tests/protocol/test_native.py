"""The native dialect without a server: literal frames in, requests or errors out."""

from __future__ import annotations

import orjson
import pytest

from websocket_realtime_engine.errors import CloseReason
from websocket_realtime_engine.protocol import framing, native
from websocket_realtime_engine.protocol.commands import Subscribed
from websocket_realtime_engine.protocol.native import FrameError, parse
from websocket_realtime_engine.publication import Publication, StreamPosition


def test_the_seed_frames_parse() -> None:
    assert parse('{"event": "subscribe", "channel": "orders"}') == native.Subscribe("orders")
    assert parse('{"event": "message", "channel": "orders", "data": {"a": 1}}') == native.Message("orders", {"a": 1})
    assert parse('{"event": "presence", "channel": "users:online"}') == native.Presence("users:online")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"event":"subscribe","channel":"private-a","auth":"k:s","id":7}',
            native.Subscribe("private-a", "k:s", None, 7),
        ),
        (
            '{"event":"subscribe","channel":"presence-a","auth":"k:s","channel_data":"{}"}',
            native.Subscribe("presence-a", "k:s", "{}"),
        ),
        ('{"event":"unsubscribe","channel":"orders","id":"x"}', native.Unsubscribe("orders", "x")),
        ('{"event":"message","channel":"private-a","data":null,"echo":true}', native.Message("private-a", None, True)),
        ('{"event":"signin","auth":"k:s","user_data":"{\\"id\\":\\"1\\"}"}', native.Signin("k:s", '{"id":"1"}')),
        ('{"event":"ping","id":3}', native.Ping(3)),
    ],
)
def test_every_request_parses(text: str, expected: native.Request) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("nonsense", 4000, "not valid JSON"),
        ("[1, 2]", 4000, "JSON object"),
        ('{"channel": "orders"}', 4000, "event is required"),
        ('{"event": 5}', 4000, "event is required"),
        ('{"event": "dance"}', 4001, "unknown event"),
        ('{"event": "subscribe"}', 4000, "channel is required"),
        ('{"event": "subscribe", "channel": "bad channel!"}', 4002, "may only contain"),
        ('{"event": "subscribe", "channel": ""}', 4002, "non-empty"),
        ('{"event": "subscribe", "channel": "' + "a" * 165 + '"}', 4002, "longer than 164"),
        ('{"event": "subscribe", "channel": "private-a", "auth": 5}', 4000, "auth must be a string"),
        ('{"event": "message", "channel": "orders"}', 4000, "data is required"),
        ('{"event": "message", "channel": "orders", "data": 1, "echo": "yes"}', 4000, "echo must be"),
        ('{"event": "signin", "auth": "a"}', 4000, "user_data is required"),
        ('{"event": "ping", "id": true}', 4000, "id must be"),
        ('{"event": "ping", "id": [1]}', 4000, "id must be"),
    ],
)
def test_bad_frames_get_their_code(text: str, code: int, message: str) -> None:
    with pytest.raises(FrameError) as info:
        parse(text)
    assert info.value.code == code
    assert message in info.value.message


def test_an_error_keeps_the_requests_id_and_channel() -> None:
    with pytest.raises(FrameError) as info:
        parse('{"event": "subscribe", "channel": "private-a", "auth": 5, "id": 9}')
    frame = orjson.loads(native.error_frame(info.value, info.value.request_id, info.value.channel))
    assert frame == {
        "event": "error",
        "channel": "private-a",
        "id": 9,
        "data": {"code": 4000, "message": "auth must be a string"},
    }


def test_the_seed_channel_users_online_is_a_valid_name() -> None:
    assert parse('{"event":"subscribe","channel":"users:online"}').channel == "users:online"  # type: ignore[union-attr]


def test_encode_leaves_out_absent_fields() -> None:
    assert orjson.loads(native.encode("pong")) == {"event": "pong"}
    assert orjson.loads(native.encode("e", "c", {"a": 1}, 5, offset=3)) == {
        "event": "e",
        "channel": "c",
        "id": 5,
        "data": {"a": 1},
        "offset": 3,
    }


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_websocket_text_frame_headers(size: int) -> None:
    payload = b"x" * size
    frame = framing.websocket_text_frame(payload)
    assert frame[0] == 0x81  # FIN + text
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size and frame[4:] == payload
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size and frame[10:] == payload


# -- the codec's newer parts: since, replies, publications, close codes ------------------------------


def test_subscribe_since_parses_to_a_stream_position() -> None:
    command = parse('{"event":"subscribe","channel":"orders","since":{"offset":7,"epoch":"ab"}}')
    assert command == native.Subscribe("orders", since=StreamPosition(7, "ab"))


@pytest.mark.parametrize(
    "since",
    ['"7"', '{"offset":-1,"epoch":"a"}', '{"offset":1}', '{"offset":1.5,"epoch":"a"}', '{"offset":1,"epoch":7}'],
)
def test_a_malformed_since_is_a_bad_request(since: str) -> None:
    with pytest.raises(FrameError) as info:
        parse('{"event":"subscribe","channel":"orders","id":4,"since":' + since + "}")
    assert info.value.code == 4000 and info.value.request_id == 4 and "since" in info.value.message


def test_a_publication_is_encoded_with_its_position_and_its_data_as_given() -> None:
    publication = Publication("orders", "order.created", b'{"id":"1"}', 3, "ep", user_id="u1")
    assert orjson.loads(native.encode_publication(publication)) == {
        "event": "order.created",
        "channel": "orders",
        "data": {"id": "1"},
        "user_id": "u1",
        "offset": 3,
        "epoch": "ep",
    }
    no_position = Publication("presence-a", "member_removed", b'{"user_id":"u1"}')
    assert orjson.loads(native.encode_publication(no_position)) == {
        "event": "member_removed",
        "channel": "presence-a",
        "data": {"user_id": "u1"},
    }
    assert "data" not in orjson.loads(native.encode_publication(Publication("orders", "e", b"null", 1, "ep")))


def test_subscribed_replies_carry_the_position_and_recovered_only_with_since() -> None:
    plain = Subscribed("orders", None, StreamPosition(4, "ep"))
    assert orjson.loads(native.encode_reply(plain, 1) or b"") == {
        "event": "subscribed",
        "channel": "orders",
        "id": 1,
        "data": {},
        "offset": 4,
        "epoch": "ep",
    }
    recovered = Subscribed("orders", None, StreamPosition(4, "ep"), recovered=False)
    assert orjson.loads(native.encode_reply(recovered) or b"")["recovered"] is False


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (CloseReason.SHUTDOWN, 1012),
        (CloseReason.DISCONNECTED, 4009),
        (CloseReason.OVER_CAPACITY, 4100),
        (CloseReason.SLOW_CONSUMER, 4101),
    ],
)
def test_close_reasons_map_to_the_native_codes(reason: CloseReason, code: int) -> None:
    assert native.close_code(reason) == code
