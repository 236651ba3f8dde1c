"""Signatures (Pusher's test vectors) and channel types, without a server."""

from __future__ import annotations

import pytest

from websocket_realtime_engine.protocol import auth
from websocket_realtime_engine.protocol.channels import ChannelPolicy, ChannelType

KEY, SECRET, SOCKET = "278d425bdf160c739803", "7ad3773142a6692b25b8", "1234.1234"


def test_private_channel_vector() -> None:
    text = auth.channel_string(SOCKET, "private-foobar")
    assert auth.sign(SECRET, text) == "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"


def test_presence_channel_vector() -> None:
    data = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}'
    text = auth.channel_string(SOCKET, "presence-foobar", data)
    assert auth.sign(SECRET, text) == "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"


def test_user_signin_vector() -> None:
    text = auth.user_string(SOCKET, '{"id":"12345"}')
    assert auth.sign(SECRET, text) == "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"


def test_verify_accepts_only_the_exact_signature_and_key() -> None:
    text = auth.channel_string(SOCKET, "private-foobar")
    good = auth.make_auth(KEY, SECRET, text)
    assert auth.verify_auth(KEY, SECRET, text, good)
    assert not auth.verify_auth(KEY, SECRET, text, good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert not auth.verify_auth(KEY, SECRET, text, "other-key:" + good.split(":")[1])
    assert not auth.verify_auth(KEY, SECRET, auth.channel_string("1.2", "private-foobar"), good)  # replayed
    assert not auth.verify_auth(KEY, SECRET, text, good.split(":")[1])  # no key part
    assert not auth.verify_auth(KEY, SECRET, text, None)
    assert not auth.verify_auth(KEY, "", text, good)


def test_channel_data_is_verified_byte_for_byte() -> None:
    data = '{"user_id":10}'
    good = auth.make_auth(KEY, SECRET, auth.channel_string(SOCKET, "presence-a", data))
    reserialised = '{"user_id": 10}'
    assert not auth.verify_auth(KEY, SECRET, auth.channel_string(SOCKET, "presence-a", reserialised), good)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("orders", ChannelType.PUBLIC),
        ("private-admin.orders", ChannelType.PRIVATE),
        ("presence-admin", ChannelType.PRESENCE),
        ("users:online", ChannelType.PRESENCE),
        ("product.42", ChannelType.PUBLIC),
    ],
)
def test_default_channel_types(name: str, kind: ChannelType) -> None:
    assert ChannelPolicy().type_of(name) is kind


def test_patterns_configure_types_and_client_publishing() -> None:
    policy = ChannelPolicy(
        presence_patterns=("room:*",),
        private_patterns=("staff.*",),
        client_message_types=("presence",),
        client_message_patterns=("chat.*",),
    )
    assert policy.type_of("room:1") is ChannelType.PRESENCE
    assert policy.type_of("staff.x") is ChannelType.PRIVATE
    assert policy.type_of("users:online") is ChannelType.PUBLIC
    assert policy.allows_client_messages("room:1")
    assert not policy.allows_client_messages("staff.x")
    assert policy.allows_client_messages("chat.lobby")
    assert not policy.allows_client_messages("orders")
