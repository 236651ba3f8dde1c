"""Reading what is not yours: private and presence channels without, with a stolen or a replayed
signature, and REST calls without or with a wrong key; each refused with its code while a subscriber on
the same node receives every one of its publications in order."""

from __future__ import annotations

import json

from tests.conftest import CREDENTIALS, Engine
from tests.security.test_input_limits import bystander, error_of

SECRET = CREDENTIALS["app_secret"]


async def test_a_private_channel_without_a_signature_is_refused(engine: Engine) -> None:
    async with bystander(engine):
        mallory = await engine.connect()
        for frame in (
            {"event": "subscribe", "channel": "private-admin.orders"},
            {"event": "subscribe", "channel": "private-admin.orders", "auth": ""},
            {"event": "subscribe", "channel": "private-admin.orders", "auth": f"{CREDENTIALS['app_key']}:00"},
            {"event": "subscribe", "channel": "private-admin.orders", "auth": "not-even-a-key:abc"},
        ):
            assert (await error_of(mallory, frame))["data"]["code"] == 4009
        await engine.node.publish(["private-admin.orders"], "order.created", {"id": 1})
        await mallory.nothing(0.2)


async def test_a_signature_made_for_another_connection_is_refused(engine: Engine) -> None:
    async with bystander(engine):
        alice, mallory = await engine.connect(), await engine.connect()
        stolen = alice.auth("private-customer.7")  # seen on the wire, or in alice's page
        frame = {"event": "subscribe", "channel": "private-customer.7", "auth": stolen}
        assert (await error_of(mallory, frame))["data"]["code"] == 4009
        assert (await alice.subscribe("private-customer.7", auth=stolen))["event"] == "subscribed"
        other_channel = {"event": "subscribe", "channel": "private-customer.8", "auth": stolen}
        assert (await error_of(alice, other_channel))["data"]["code"] == 4009, "bound to the channel too"


async def test_a_replayed_signature_on_a_new_connection_is_refused(engine: Engine) -> None:
    async with bystander(engine):
        first = await engine.connect()
        good = first.auth("private-admin.orders")
        assert (await first.subscribe("private-admin.orders", auth=good))["event"] == "subscribed"
        await first.ws.close()
        again = await engine.connect()  # a new connection: a new id, so the old signature is worthless
        frame = {"event": "subscribe", "channel": "private-admin.orders", "auth": good}
        assert (await error_of(again, frame))["data"]["code"] == 4009


async def test_presence_member_data_cannot_be_changed_after_signing(engine: Engine) -> None:
    async with bystander(engine):
        mallory = await engine.connect()
        signed = json.dumps({"user_id": "7", "user_info": {"name": "Mallory"}})
        forged = json.dumps({"user_id": "1", "user_info": {"name": "Admin"}})
        auth = mallory.auth("presence-room", signed)
        frame = {"event": "subscribe", "channel": "presence-room", "auth": auth, "channel_data": forged}
        assert (await error_of(mallory, frame))["data"]["code"] == 4009
        assert (await mallory.subscribe("presence-room", auth=auth, channel_data=signed))["event"] == "subscribed"


async def test_rest_calls_without_or_with_a_wrong_key_are_refused(engine: Engine) -> None:
    async with bystander(engine):
        broadcast = {"channel": "orders", "event": "forged", "data": {}}
        for headers in (
            {},
            {"Authorization": "Bearer "},
            {"Authorization": f"Bearer {CREDENTIALS['api_key']}x"},
            {"Authorization": f"Basic {CREDENTIALS['api_key']}"},
            {"X-Api-Key": CREDENTIALS["app_secret"]},
        ):
            status, answer = await engine.api("POST", "/api/v1/broadcast", headers=headers, json=broadcast)
            assert status == 401 and answer["error"]["code"] == "unauthorized", (headers, status, answer)
