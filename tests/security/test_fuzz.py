"""Property-based fuzzing (hypothesis) with a fixed budget: derandomised, so every run tries the same
inputs, and small enough that the file runs in a few seconds.

* the native codec: any text or bytes parses to a command or raises FrameError with a code of
  docs/protocol.md section 7.1, and what it accepts the engine can send on;
* the REST API over a real server: any body to broadcast and the authenticate routes answers 2xx or
  a 4xx the route documents (openapi.yaml), as JSON; never a 5xx, never an ERROR log record;
* the shop event payloads: a valid event (JSON the engine can publish) or a validation error
  naming the field.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from shopologic.events import EVENT_HOOKS, HOOK_SCHEMAS, InvalidEventError, validate_event
from tests.conftest import Engine, EngineFactory, engine_hook_module, make_settings
from websocket_realtime_engine.protocol import jsonlimits, native
from websocket_realtime_engine.protocol.channels import check_name
from websocket_realtime_engine.protocol.commands import (
    FrameError,
    Message,
    Ping,
    Presence,
    Signin,
    Subscribe,
    Unsubscribe,
)
from websocket_realtime_engine.web import rest
from websocket_realtime_engine.web.authenticate import HostAccess

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
SPEC = yaml.safe_load(rest.OPENAPI.read_text(encoding="utf-8"))
COMMANDS = (Subscribe, Unsubscribe, Message, Presence, Signin, Ping)
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def fuzz(examples: int) -> settings:
    """The fixed budget of one property: ``examples`` inputs, the same ones every run."""
    return settings(FUZZ, max_examples=examples)


def documented_error_codes() -> set[int]:
    """The codes of the error-frame table, docs/protocol.md section 7.1."""
    section = PROTOCOL.split("### 7.1 Error frames", 1)[1].split("### 7.2", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d{4}) \|", section, re.MULTILINE)}


def documented_rest_codes() -> set[str]:
    """The machine codes the API's description lists."""
    errors = SPEC["info"]["description"].split("**Errors.**", 1)[1].split("**", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", errors))


ERROR_CODES = documented_error_codes()
REST_CODES = documented_rest_codes()


def test_the_documented_codes_were_read() -> None:
    assert {4000, 4001, 4002, 4020} <= ERROR_CODES
    assert {"invalid_json", "invalid_request", "limit_exceeded", "rate_limited"} <= REST_CODES


# -- strategies ------------------------------------------------------------------------------------

# JSON as a client may write it: any text (lone surrogates too: they reach the parser as \ud800
# escapes), integers of any size, floats the standard library writes
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


def mostly(valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    """``valid`` nine times in ten, else ``wrong``: inputs that get past the first check now and then."""
    return st.integers(0, 9).flatmap(lambda turn: wrong if turn == 0 else valid)


names = st.sampled_from(["orders", "private-a", "presence-a", "users:online", "a" * 164, "a" * 165, "bad name", ""])
channels = mostly(names, st.text(max_size=20) | json_values)
ids = mostly(st.none() | st.integers(-(2**70), 2**70) | st.text(max_size=70), json_values)
member_texts = st.sampled_from(
    ['{"user_id":"7"}', '{"user_id":7,"user_info":{"a":1}}', '{"id":"7"}', "{", "[]", '{"user_id":[]}', ""]
)
optional_fields = {
    "channel": channels,
    "id": ids,
    "auth": mostly(st.sampled_from(["test-key:00", "x"]) | st.text(max_size=80)),
    "channel_data": mostly(member_texts | st.text(max_size=30)),
    "user_data": mostly(member_texts | st.text(max_size=30)),
    "data": json_values,
    "echo": mostly(st.booleans()),
    "since": mostly(st.fixed_dictionaries({"offset": st.integers(), "epoch": st.text(max_size=70)})),
}
frames = st.fixed_dictionaries(
    {"event": mostly(st.sampled_from(sorted(native.CLIENT_EVENTS)), st.text(max_size=10) | json_values)},
    optional=optional_fields,
)


def deep(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


frame_texts = mostly(
    frames.map(json.dumps),
    json_values.map(json.dumps)
    | st.text()
    | st.builds(lambda n: '{"event":"message","channel":"c","data":' + deep(n) + "}", st.integers(0, 1200)),
)


# -- the native codec ------------------------------------------------------------------------------


def parses_within_the_contract(text: str | bytes) -> Any:
    """``native.parse(text)``: a command, or None after a documented FrameError; nothing else."""
    try:
        command = native.parse(text)
    except FrameError as error:
        event(f"error {error.code}")
        assert error.code in ERROR_CODES, (error.code, error.message)
        assert error.message and len(error.message) < 300
        native.error_frame(error, error.request_id, error.channel)  # the error frame can be sent
        return None
    assert isinstance(command, COMMANDS)
    event(type(command).__name__)
    if isinstance(command, Message):
        orjson.dumps(command.data)  # what the node does next: it can
    if hasattr(command, "channel"):
        assert check_name(command.channel) == command.channel
    return command


@fuzz(1500)
@given(frame_texts)
def test_any_text_frame_parses_to_a_command_or_a_documented_error(text: str) -> None:
    parses_within_the_contract(text)


@fuzz(500)
@given(st.binary() | frame_texts.map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_any_bytes_parse_to_a_command_or_a_documented_error(data: bytes) -> None:
    parses_within_the_contract(data)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def integers_of(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [number for item in value.values() for number in integers_of(item)]
    if isinstance(value, list):
        return [number for item in value for number in integers_of(item)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


clean_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
clean_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | clean_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(clean_text, inner, max_size=3),
    max_leaves=60,
)


@fuzz(300)
@given(clean_values, st.integers(0, 60), st.integers(1, 250))
def test_the_depth_check_counts_levels_as_a_walk_does(data: Any, extra_depth: int, max_depth: int) -> None:
    value = orjson.loads("[" * extra_depth + json.dumps(data) + "]" * extra_depth)
    assert jsonlimits.deeper_than(value, max_depth) == (depth_of(value) > max_depth)


@fuzz(800)
@given(clean_values, st.integers(1, 40))
def test_message_data_is_accepted_exactly_when_within_the_limits(data: Any, extra_depth: int) -> None:
    data = json.loads("[" * extra_depth + json.dumps(data) + "]" * extra_depth)
    text = json.dumps({"event": "message", "channel": "private-a", "data": data, "id": 1})
    too_deep = 1 + depth_of(data) > jsonlimits.DEFAULT_MAX_DEPTH
    too_big = any(not jsonlimits.SMALLEST_INTEGER <= n <= jsonlimits.LARGEST_INTEGER for n in integers_of(data))
    command = parses_within_the_contract(text)
    if too_deep or too_big:
        assert command is None
    else:
        assert isinstance(command, Message) and command.data == data


# -- the REST API over a real server ---------------------------------------------------------------

SESSIONS = {"ada": {"id": "7", "role": "customer", "info": {"name": "Ada"}}, "root": {"id": "1", "role": "admin"}}


def identify(request: web.Request) -> dict[str, Any] | None:
    return SESSIONS.get(request.cookies.get("session", ""))


def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
    return user is not None and (user["role"] == "admin" or channel == f"private-customer.{user['id']}")


# stand-ins replaced in the body's text: nesting no encoder writes, integers beyond 64 bits
SPECIAL = {"<deep:40>": deep(40), "<deep:300>": deep(300), "<deep:1500>": deep(1500), "<big>": str(2**64)}
wild_values = json_values | st.sampled_from(sorted(SPECIAL))
connection_ids = mostly(st.sampled_from(["1.2", "123.456"]), st.sampled_from(["1.2\n", "abc", ""]) | json_values)
users = st.fixed_dictionaries(
    {"id": mostly(st.sampled_from(["7", "1", "x" * 129]))},
    optional={
        "role": mostly(st.sampled_from(["customer", "admin"])),
        "info": mostly(st.dictionaries(st.text(), wild_values)),
    },
)
bodies = {
    "/api/v1/broadcast": st.fixed_dictionaries(
        {"event": mostly(st.text(min_size=1, max_size=10)), "data": wild_values},
        optional={
            "exclude": mostly(st.none() | connection_ids),
            "idempotency_key": mostly(st.none() | st.text(max_size=10)),
        },
    ).flatmap(
        lambda body: mostly(
            st.fixed_dictionaries({"channel": channels})
            | st.fixed_dictionaries({"channels": st.lists(names, max_size=3)}),
            st.fixed_dictionaries({}, optional={"channel": channels, "channels": json_values}),
        ).map(lambda target: {**body, **target})
    ),
    "/api/v1/authenticate": st.fixed_dictionaries(
        {
            "connection_id": connection_ids,
            "channel": mostly(st.sampled_from(["private-customer.7", "presence-room", "private-a", "orders"]) | names),
        },
        optional={
            "channel_data": mostly(
                member_texts | st.none(), st.sampled_from(['{"user_id":"7","user_info":<deep:40>}'])
            ),
            "user": mostly(st.none() | users),
        },
    ),
    "/api/v1/authenticate/user": st.fixed_dictionaries(
        {"connection_id": connection_ids},
        optional={
            "user_data": mostly(
                st.fixed_dictionaries(
                    {"id": mostly(st.text(min_size=1, max_size=5))},
                    optional={
                        "user_info": mostly(st.dictionaries(st.text(max_size=5), wild_values, min_size=1, max_size=3))
                    },
                )
            )
        },
    ),
}
requests = st.sampled_from(sorted(bodies)).flatmap(
    lambda path: st.tuples(
        st.just(path),
        mostly(bodies[path]),
        st.sampled_from(["api key", "session", "wrong key", "nothing"]),
        st.sampled_from(["json", "json", "json", "form", "raw"]),
    )
)


def documented_statuses(path: str) -> set[int]:
    return {int(status) for status in SPEC["paths"][path]["post"]["responses"]}


def with_specials(text: str) -> str:
    for name, value in SPECIAL.items():
        text = text.replace(f'"{name}"', value).replace(name, value)
    return text


def encoded(body: Any, form: str) -> tuple[bytes, str]:
    if form == "form" and isinstance(body, dict):
        fields = {key: value if isinstance(value, str) else json.dumps(value) for key, value in body.items()}
        renamed = {"connection_id": "socket_id", "channel": "channel_name"}
        pairs = "&".join(f"{renamed.get(key, key)}={value}" for key, value in fields.items())
        return with_specials(pairs).encode("utf-8", "surrogatepass"), "application/x-www-form-urlencoded"
    text = with_specials(json.dumps(body))
    if form == "raw":  # the stdlib's bytes, lone surrogates included, and a cut-off copy now and then
        data = text.encode("utf-8", "surrogatepass")
        return (data[: len(data) // 2] if len(data) % 3 == 0 else data), "application/json"
    return text.encode(), "application/json"


@pytest.fixture
async def fuzzed_engine(engine_factory: EngineFactory) -> Engine:
    access = HostAccess(identify=identify, authorize=authorize, requests_per_second=1e6)
    return await engine_factory(make_settings(rest_requests_per_second=1e6), access=access)  # type: ignore[no-any-return]


CID = "123.456"
KNOWN_HARD = (
    [  # inputs that once gave a 500 or a silent loss: tried on every run, before the random ones
        ("/api/v1/authenticate/user", {"connection_id": CID, "user_data": {"id": "1", "user_info": {"x": special}}})
        for special in SPECIAL
    ]
    + [
        (
            "/api/v1/authenticate",
            {"connection_id": CID, "channel": "presence-a", "user": {"id": "1", "info": {"x": special}}},
        )
        for special in SPECIAL
    ]
    + [("/api/v1/broadcast", {"channel": "orders", "event": "e", "data": special}) for special in SPECIAL]
    + [
        (
            "/api/v1/authenticate",
            {"connection_id": CID, "channel": "presence-a", "channel_data": f'{{"user_id":{special}}}'},
        )
        for special in SPECIAL
    ]
)


def with_known_hard_examples(test: Any) -> Any:
    for path, body in KNOWN_HARD:
        test = example(request=(path, body, "api key", "json"))(test)
    return test


@fuzz(400)
@with_known_hard_examples
@given(request=requests)
async def test_any_rest_body_gets_a_documented_answer_and_no_error_log(
    fuzzed_engine: Engine, caplog: pytest.LogCaptureFixture, request: tuple[str, Any, str, str]
) -> None:
    path, body, caller, form = request
    data, content_type = encoded(body, form)
    headers = {"Content-Type": content_type}
    if caller == "api key":
        headers.update(fuzzed_engine.api_headers)
    elif caller == "wrong key":
        headers["Authorization"] = "Bearer not-the-key"
    elif caller == "session":
        headers["Cookie"] = "session=ada" if len(data) % 2 else "session=root"
    async with fuzzed_engine.session.post(fuzzed_engine.url(path), data=data, headers=headers) as response:
        status = response.status
        assert response.content_type == "application/json", (status, await response.text())
        answer = await response.json()
    event(f"{path} {caller}: {status}")
    assert status in documented_statuses(path), (path, body, status, answer)
    if status >= 400:
        assert set(answer) == {"error"} and answer["error"]["code"] in REST_CODES, answer
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, [record.getMessage() for record in errors]


# -- the shop event payloads -----------------------------------------------------------------------

amounts = mostly(
    st.decimals(min_value=0, max_value=10**6, places=2).map(str),
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.integers()
    | st.floats()
    | st.sampled_from(["1e30", "-1", "NaN", "sNaN", "1E+999999", "99999999999999999999999999.99", "0.001"])
    | st.text(max_size=10),
)
dates = mostly(st.sampled_from(["2026-11-26T07:00:00+00:00", "9999-12-31T23:59:59+14:00", "2026-02-30T00:00:00"]))
string_ids = mostly(st.integers(0, 10**6) | st.text(min_size=1, max_size=64), st.integers() | st.text(max_size=70))
items = mostly(
    st.fixed_dictionaries(
        {
            "product_id": string_ids,
            "name": mostly(st.text(min_size=1, max_size=5)),
            "quantity": mostly(st.integers(1, 9)),
            "price": amounts,
        }
    )
)
orders = mostly(
    st.fixed_dictionaries(
        {"id": string_ids, "status": mostly(st.sampled_from(["pending", "paid"])), "total": amounts},
        optional={
            "items": mostly(st.lists(items, max_size=3)),
            "customer_id": mostly(st.none() | string_ids),
            "email": mostly(st.sampled_from(["ada@example.com", "not an email"])),
            "shipping_address": mostly(st.fixed_dictionaries({}, optional={"country": st.sampled_from(["FR", "FRA"])})),
            "created_at": dates,
            "currency": mostly(st.sampled_from(["EUR", "eur"])),
            "number": mostly(st.text(max_size=10)),
            "extra": json_values,
        },
    )
)
products = mostly(
    st.fixed_dictionaries(
        {"id": string_ids, "name": mostly(st.text(min_size=1, max_size=5)), "price": amounts},
        optional={"stock": mostly(st.integers(0, 2**64)), "sku": mostly(st.none() | st.text(max_size=5))},
    )
)
fields_of_hooks = {
    "order": orders,
    "product": products,
    "changes": mostly(st.lists(st.text(max_size=70), max_size=3)),
    "previous_status": mostly(st.sampled_from(["paid", "gone"])),
    "reason": mostly(st.text(max_size=10)),
    "previous_stock": mostly(st.integers(0, 2**64)),
    "previous_price": amounts,
}
events_and_payloads = st.sampled_from(sorted(HOOK_SCHEMAS)).flatmap(
    lambda hook: st.tuples(
        st.just(hook),
        st.fixed_dictionaries(
            {name: fields_of_hooks[name] for name in HOOK_SCHEMAS[hook]().fields if name in ("order", "product")},
            optional={
                name: fields_of_hooks[name] for name in HOOK_SCHEMAS[hook]().fields if name not in ("order", "product")
            }
            | ({"order": orders} if "product" in HOOK_SCHEMAS[hook]().fields else {}),
        ),
    )
)
commerce = engine_hook_module("hooks/commerce.py")


@fuzz(600)
@given(events_and_payloads)
def test_a_shop_event_payload_is_a_valid_event_or_a_validation_error(call: tuple[str, dict[str, Any]]) -> None:
    hook, kwargs = call
    try:
        payload = validate_event(hook, kwargs)
    except InvalidEventError as error:
        event("invalid")
        assert error.hook_name == hook and error.errors and all(isinstance(key, str) for key in error.errors)
        return
    event("valid")
    text = orjson.dumps(payload)  # what is published, as it is
    jsonlimits.loads(text, jsonlimits.DEFAULT_MAX_DEPTH)  # and a REST broadcast would take it
    if "order" in payload:
        name = next(name for name, hook_name in EVENT_HOOKS.items() if hook_name == hook)
        extra = {key: value for key, value in payload.items() if key != "order"}
        for broadcast_channels, _, data in commerce.order_broadcasts(name, payload["order"], **extra):
            assert [check_name(channel) for channel in broadcast_channels]
            orjson.dumps(data)
