"""The contract is the documentation: every hookspec says what each parameter is and what it returns."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

import pytest

from shopologic import hookspecs as host_hookspecs
from shopologic.hookspecs import PROJECT_NAME, hookspec
from tests.conftest import engine_hook_module

engine_hookspecs = engine_hook_module("hooks/hookspecs.py")

SPEC_ATTRIBUTE = f"{PROJECT_NAME}_spec"
FIRSTRESULT_PHRASE = "Stops at the first non-None result"
SPEC_MODULES = [host_hookspecs, engine_hookspecs]


def specs_of(module: types.ModuleType) -> dict[str, Callable[..., Any]]:
    """The hookspec functions of ``module``: those pluggy's marker has tagged."""
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value) and hasattr(value, SPEC_ATTRIBUTE)
    }


def documentation_problems(spec: Callable[..., Any]) -> list[str]:
    """What a hookspec's docstring fails to say; empty when it is fully documented."""
    doc = inspect.getdoc(spec)
    if not doc:
        return ["no docstring"]
    problems = []
    summary = doc.split(":param", 1)[0].split(":returns:", 1)[0].strip()
    if not summary:
        problems.append("no sentence saying when it is called")
    for parameter in inspect.signature(spec).parameters:
        if f":param {parameter}:" not in doc:
            problems.append(f"no ':param {parameter}:'")
    for documented in _documented_parameters(doc):
        if documented not in inspect.signature(spec).parameters:
            problems.append(f"':param {documented}:' documents no parameter")
    if ":returns:" not in doc:
        problems.append("no ':returns:'")
    if getattr(spec, SPEC_ATTRIBUTE).get("firstresult") and FIRSTRESULT_PHRASE not in " ".join(doc.split()):
        problems.append(f"firstresult spec does not say {FIRSTRESULT_PHRASE!r}")
    return problems


def _documented_parameters(doc: str) -> list[str]:
    return [chunk.split(":", 1)[0].strip() for chunk in doc.split(":param ")[1:]]


def all_specs() -> list[tuple[str, Callable[..., Any]]]:
    return [(f"{module.__name__}.{name}", spec) for module in SPEC_MODULES for name, spec in specs_of(module).items()]


def test_the_spec_modules_are_found_with_every_hook_the_platform_relies_on() -> None:
    names = {qualified.rsplit(".", 1)[1] for qualified, _ in all_specs()}
    expected = {
        "plugin_activated",
        "plugin_deactivated",
        "platform_loaded",
        "plugin_migrations",
        "plugin_migrated",
        "sessions_revoked",
        "health_checks",
        "order_created",
        "order_updated",
        "order_status_changed",
        "order_cancelled",
        "product_created",
        "product_updated",
        "product_stock_changed",
        "product_price_changed",
        "register_routes",
        "background_services",
        "identify_user",
        "authorize_channel",
        "register_commands",
        "server_address",
        "server_banner",
        "realtime_connection_opened",
        "realtime_connection_closed",
        "realtime_channel_occupied",
        "realtime_channel_vacated",
        "realtime_member_added",
        "realtime_member_removed",
        "realtime_client_message",
    }
    assert expected <= names, f"missing specs: {sorted(expected - names)}"


@pytest.mark.parametrize(("qualified", "spec"), all_specs(), ids=[qualified for qualified, _ in all_specs()])
def test_every_hookspec_is_documented(qualified: str, spec: Callable[..., Any]) -> None:
    assert documentation_problems(spec) == [], f"{qualified} is not fully documented"


def test_the_firstresult_specs_are_the_authorization_hooks_and_the_server_address() -> None:
    firstresult = {qualified for qualified, spec in all_specs() if getattr(spec, SPEC_ATTRIBUTE).get("firstresult")}
    assert firstresult == {
        "shopologic.hookspecs.identify_user",
        "shopologic.hookspecs.authorize_channel",
        "shopologic.hookspecs.server_address",
    }


# -- the check itself must fail on an undocumented spec -----------------------------------------------


@hookspec
def _undocumented(order: dict[str, Any]) -> None:
    pass


@hookspec
def _missing_a_param(order: dict[str, Any], reason: str) -> None:
    """An order was cancelled.

    :param order: the order.
    :returns: nothing.
    """


@hookspec
def _documents_a_ghost(order: dict[str, Any]) -> None:
    """An order was cancelled.

    :param order: the order.
    :param reason: a parameter the spec does not have.
    :returns: nothing.
    """


@hookspec
def _missing_returns(order: dict[str, Any]) -> None:
    """An order was cancelled.

    :param order: the order.
    """


@hookspec(firstresult=True)
def _silent_firstresult(request: Any) -> str | None:
    """Who is it?

    :param request: the request.
    :returns: an answer, or ``None``.
    """


@hookspec
def _only_fields(order: dict[str, Any]) -> None:
    """:param order: the order.
    :returns: nothing.
    """


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (_undocumented, "no docstring"),
        (_missing_a_param, "no ':param reason:'"),
        (_documents_a_ghost, "':param reason:' documents no parameter"),
        (_missing_returns, "no ':returns:'"),
        (_silent_firstresult, f"firstresult spec does not say {FIRSTRESULT_PHRASE!r}"),
        (_only_fields, "no sentence saying when it is called"),
    ],
)
def test_the_check_reports_an_undocumented_spec(spec: Callable[..., Any], problem: str) -> None:
    assert documentation_problems(spec) == [problem]


def test_the_check_finds_specs_added_to_a_module() -> None:
    module = types.ModuleType("some_plugin.hookspecs")
    module.documented = host_hookspecs.order_created  # type: ignore[attr-defined]
    module.undocumented = _undocumented  # type: ignore[attr-defined]
    module.helper = lambda: None  # type: ignore[attr-defined]  # not a spec: ignored
    found = specs_of(module)
    assert set(found) == {"documented", "undocumented"}
    assert [name for name, spec in found.items() if documentation_problems(spec)] == ["undocumented"]
