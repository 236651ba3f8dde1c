"""The OpenAPI contract (web/openapi.yaml) against the routes and the answers of a real server.

jsonschema is not a dependency, so :func:`schema_errors` checks the JSON Schema subset the document
uses ($ref, type, properties, required, additionalProperties, propertyNames, items, enum, oneOf,
lengths, bounds and patterns); it refuses any other keyword, so the subset cannot drift silently.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Engine, positioned
from websocket_realtime_engine.web import rest

SPEC_PATH: Path = rest.OPENAPI  # the file the server serves
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
ANNOTATIONS = frozenset({"description", "examples", "default", "title", "format"})
Schema = dict[str, Any]
# outside /api/v1: no API key, and their own answer form (a load balancer or Prometheus reads it)
HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


# -- a small JSON Schema checker -------------------------------------------------------------------


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow ``$ref`` (``#/...`` only) until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    python = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}[kind]
    return isinstance(value, python)


def _object_errors(spec: dict[str, Any], schema: Schema, value: dict[str, Any], where: str) -> list[str]:
    errors = [f"{where}: missing {key!r}" for key in schema.get("required", ()) if key not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in schema:
            errors += schema_errors(spec, schema["propertyNames"], key, f"{where} key {key!r}")
        if key in properties:
            errors += schema_errors(spec, properties[key], item, f"{where}.{key}")
        elif extra is False:
            errors.append(f"{where}: unexpected {key!r}")
        elif isinstance(extra, dict):
            errors += schema_errors(spec, extra, item, f"{where}.{key}")
    return errors


def _bounds_errors(schema: Schema, value: Any, where: str) -> list[str]:
    errors = []
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{where}: length {len(value)} out of bounds")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    fewest, most = schema.get("minItems", 0), schema.get("maxItems", math.inf)
    if isinstance(value, list) and not fewest <= len(value) <= most:
        errors.append(f"{where}: {len(value)} items out of bounds")
    lowest, highest = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    if _type_ok(value, "number") and not lowest <= value <= highest:
        errors.append(f"{where}: {value} out of bounds")
    return errors


def schema_errors(spec: dict[str, Any], schema: Schema, value: Any, where: str = "$") -> list[str]:
    """Why ``value`` does not validate against ``schema`` (an empty list when it does)."""
    schema = resolve(spec, schema)
    known = {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "enum",
        "oneOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
    }
    unknown = set(schema) - known - ANNOTATIONS
    assert not unknown, f"{where}: the checker does not know {sorted(unknown)}"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_type_ok(value, kind) for kind in kinds):
            return [f"{where}: {value!r} is not of type {kinds}"]
    errors = _bounds_errors(schema, value, where)
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        errors += _object_errors(spec, schema, value, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(spec, schema["items"], item, f"{where}[{index}]")
    if "oneOf" in schema:
        matching = sum(not schema_errors(spec, option, value, where) for option in schema["oneOf"])
        if matching != 1:
            errors.append(f"{where}: matches {matching} of oneOf, not exactly one")
    return errors


def test_the_checker_catches_mismatches(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert schema_errors(spec, error, {"error": {"code": "x", "message": "y"}}) == []
    assert schema_errors(spec, error, {"error": {"code": 4000, "message": "y"}})
    assert schema_errors(spec, error, {"error": {"code": "x"}})
    assert schema_errors(spec, error, {"error": {"code": "x", "message": "y"}, "extra": 1})
    broadcast = {"$ref": "#/components/schemas/BroadcastRequest"}
    assert schema_errors(spec, broadcast, {"channel": "orders", "event": "e", "data": None}) == []
    assert schema_errors(spec, broadcast, {"channel": "a", "channels": ["b"], "event": "e", "data": 1})
    assert schema_errors(spec, broadcast, {"channel": "bad name", "event": "e", "data": 1})


def response_schema(spec: dict[str, Any], method: str, path: str, status: int) -> Schema:
    operation = spec["paths"][path][method.lower()]
    assert str(status) in operation["responses"], f"{method} {path} does not document {status}"
    response = resolve(spec, operation["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


# -- the document ----------------------------------------------------------------------------------


def test_the_document_is_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["security"] == [{"bearerAuth": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["shopSession"]["in"], schemes["shopSession"]["name"]) == ("cookie", "shopologic_session")


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                assert resolve(spec, node) is not None
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(spec)


def _examples(media: dict[str, Any]) -> list[Any]:
    found = [media["example"]] if "example" in media else []
    return found + [example["value"] for example in media.get("examples", {}).values()]


def test_every_example_matches_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            bodies = [operation.get("requestBody", {})]
            bodies += [resolve(spec, response) for response in operation["responses"].values()]
            for body in bodies:
                for media_type, media in body.get("content", {}).items():
                    for example in _examples(media):
                        assert schema_errors(spec, media["schema"], example) == [], (method, path, media_type)
                        checked += 1
    for name, response in spec["components"]["responses"].items():
        for example in _examples(response["content"]["application/json"]):
            assert schema_errors(spec, response["content"]["application/json"]["schema"], example) == [], name
            checked += 1
    assert checked > 20


def test_error_responses_use_the_shared_error_schema(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path not in HEALTH_PATHS:
                    schema = resolve(spec, response)["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


# -- the document against the server ---------------------------------------------------------------


def registered_api_routes(engine: Engine) -> set[tuple[str, str]]:
    """(method, path template) of every route under /api/v1 and of the health routes, but the HEAD
    aiohttp adds to each GET."""
    routes = set()
    for route in engine.server.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if (path.startswith("/api/v1/") or path in HEALTH_PATHS) and route.method != "HEAD":
            routes.add((route.method, path))
    return routes


def documented_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    paths = spec["paths"].items()
    return {(method.upper(), path) for path, item in paths for method in item if method in METHODS}


async def test_the_document_and_the_router_list_the_same_routes(engine: Engine, spec: dict[str, Any]) -> None:
    registered = registered_api_routes(engine)
    assert len(registered) >= 11
    assert registered - documented_routes(spec) == set(), "routes missing from openapi.yaml"
    assert documented_routes(spec) - registered == set(), "openapi.yaml documents routes that do not exist"


async def test_the_document_is_served_without_an_api_key(engine: Engine) -> None:
    async with engine.session.get(engine.url("/api/v1/openapi.yaml")) as response:
        assert response.status == 200
        assert response.content_type == "application/yaml"
        assert await response.read() == SPEC_PATH.read_bytes()


def template_of(spec: dict[str, Any], path: str) -> str:
    """The documented path template a concrete path (query left out) falls under."""
    path = path.partition("?")[0]
    for template in spec["paths"]:
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path):
            return template
    raise AssertionError(f"{path} is not documented")


async def call_and_check(
    engine: Engine, spec: dict[str, Any], method: str, path: str, expected_status: int, **kwargs: Any
) -> Any:
    """Call the real server; assert the status and that the JSON body matches the documented schema."""
    status, body = await engine.api(method, path, **kwargs)
    assert status == expected_status, body
    schema = response_schema(spec, method, template_of(spec, path), status)
    assert schema_errors(spec, schema, body) == [], (method, path, status, body)
    return body


async def test_broadcast_answers_match_the_schemas(engine: Engine, spec: dict[str, Any]) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    published = {"channels": ["orders", "products"], "event": "order.created", "data": {"x": 1}}
    body = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=published)
    assert body == {"published": {"channels": ["orders", "products"], "event": "order.created"}}
    assert positioned(await client.recv()) == {"event": "order.created", "channel": "orders", "data": {"x": 1}}
    bad_bodies = [{"event": "e", "data": 1}, {"channel": "orders", "event": "e"}, [1], "{not json"]
    for bad in bad_bodies:
        kwargs = {"data": bad} if isinstance(bad, str) else {"json": bad}
        error = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 400, **kwargs)
        assert error["error"]["code"] in {"invalid_request", "invalid_json"}


async def test_a_missing_or_wrong_api_key_is_a_documented_401(engine: Engine, spec: dict[str, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        error = await call_and_check(engine, spec, "GET", "/api/v1/status", 401, headers=headers)
        assert error["error"]["code"] == "unauthorized"
        await call_and_check(
            engine,
            spec,
            "POST",
            "/api/v1/broadcast",
            401,
            headers=headers,
            json={"channel": "orders", "event": "e", "data": 1},
        )
    error = await call_and_check(
        engine,
        spec,
        "POST",
        "/api/v1/authenticate",
        401,
        headers={},
        json={"connection_id": "1.2", "channel": "private-x"},
    )
    assert error["error"]["code"] == "unauthorized"


async def test_members_of_a_channel_that_is_not_presence_is_a_documented_400(
    engine: Engine, spec: dict[str, Any]
) -> None:
    error = await call_and_check(engine, spec, "GET", "/api/v1/channels/orders/members", 400)
    assert error["error"]["code"] == "not_presence"


async def test_the_other_routes_answer_as_documented(engine: Engine, spec: dict[str, Any]) -> None:
    client = await engine.connect()
    member = '{"user_id":"42","user_info":{"name":"Ada"}}'
    await client.subscribe("orders")
    await client.subscribe("presence-room", auth=client.auth("presence-room", member), channel_data=member)
    cid = client.connection_id
    calls: list[tuple[str, str, int, dict[str, Any]]] = [
        ("GET", "/api/v1/channels?prefix=pre&type=presence", 200, {}),
        ("GET", "/api/v1/channels?type=secret", 400, {}),
        ("GET", "/api/v1/channels/orders", 200, {}),
        ("GET", "/api/v1/channels/presence-room", 200, {}),
        ("GET", "/api/v1/channels/bad%20name", 400, {}),
        ("GET", "/api/v1/channels/presence-room/members", 200, {}),
        ("GET", "/api/v1/connections?channel=orders&limit=5", 200, {}),
        ("GET", "/api/v1/connections?limit=0", 400, {}),
        ("GET", "/api/v1/status", 200, {}),
        (
            "POST",
            "/api/v1/authenticate",
            200,
            {"json": {"connection_id": cid, "channel": "presence-room", "channel_data": member}},
        ),
        (
            "POST",
            "/api/v1/authenticate",
            200,
            {"data": {"socket_id": cid, "channel_name": "private-admin.orders"}},
        ),  # Pusher's form
        ("POST", "/api/v1/authenticate", 400, {"json": {"connection_id": cid, "channel": "orders"}}),
        ("POST", "/api/v1/authenticate/user", 200, {"json": {"connection_id": cid, "user_data": {"id": "42"}}}),
        ("POST", "/api/v1/authenticate/user", 400, {"json": {"connection_id": cid}}),
        ("POST", "/api/v1/users/nobody/disconnect", 200, {}),
        ("POST", "/api/v1/connections/1.2/disconnect", 404, {}),
        ("POST", f"/api/v1/connections/{cid}/disconnect", 200, {}),
    ]
    for method, path, status, kwargs in calls:
        await call_and_check(engine, spec, method, path, status, **kwargs)


async def test_the_connection_list_pages_with_after_and_next(engine: Engine, spec: dict[str, Any]) -> None:
    clients = [await engine.connect() for _ in range(5)]
    expected = sorted(client.connection_id for client in clients)
    seen: list[str] = []
    after = ""
    while True:
        query = f"?limit=2&after={after}" if after else "?limit=2"
        page = await call_and_check(engine, spec, "GET", "/api/v1/connections" + query, 200)
        assert page["count"] == 5
        seen += [connection["id"] for connection in page["connections"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == expected
    error = await call_and_check(engine, spec, "GET", "/api/v1/connections?after=" + "x" * 65, 400)
    assert error["error"]["code"] == "invalid_request" and "after" in error["error"]["message"]
