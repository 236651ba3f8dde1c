"""Imports point one way (shared/DESIGN.md's layer table), read from the sources with ``ast``.

The plugin's layers, each importing only those below it::

    hooks/  →  websocket_realtime_engine/web/  →  engine core (session, node, hub, connection, …)
            →  backends (broker/, presence/, history/, registry/, db/) and leaf modules (errors, …)

``protocol/`` is sans-I/O: no asyncio, no aiohttp, no engine module but ``errors`` and ``publication``
(the dialect-neutral value codecs encode). The engine imports
no pluggy, no host module and no hook. The host (``shopologic/``) calls the hooks through pluggy and
imports no plugin module at any depth (``TYPE_CHECKING`` included); hooks may import the host's
contract (``hookimpl``, :mod:`shopologic.contracts`). No package has an import cycle, function-level
and ``TYPE_CHECKING`` imports included: an import hidden in a function still is a cycle.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "websocket_realtime_engine"
PACKAGE_ROOT = ROOT / PACKAGE
HOST = "shopologic"
HOOKS = "hooks"
PACKAGES = (HOST, HOOKS, PACKAGE)  # the import-cycle check runs in each


@dataclass(frozen=True)
class Rule:
    """Modules matching ``sources`` (paths relative to the project root) must not import ``forbidden``."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()  # for "no engine module except …" rules


@dataclass(frozen=True)
class Layer:
    """One row of the layer table: folders (ending in ``/``) and modules, relative to the project root."""

    name: str
    sources: tuple[str, ...]


def _engine(*names: str) -> tuple[str, ...]:
    return tuple(f"{PACKAGE}/{name}" for name in names)


ENGINE_CORE = _engine(
    "session.py",
    "node.py",
    "membership.py",
    "hub.py",
    "connection.py",
    "dispatch.py",
    "catchup.py",
    "admission.py",
    "recovery.py",
    "runtime.py",
    "client.py",
    "backends.py",
    "outbox.py",  # the outbox drainer: publishes through the node, reads the outbox in db/
    "feeds.py",  # the admin feeds (private-realtime.*): an observer of the node, publishes to the broker
)
BACKENDS = _engine(
    "broker/",
    "presence/",
    "history/",
    "registry/",
    "idempotency/",
    "db/",
    "publication.py",
    "wire.py",  # a publication as bytes, for Redis: imports only publication
    "redis_calls.py",  # calling Redis, for the Redis backends
    "observers.py",  # the observer interface: imports only publication
    "errors.py",
    "config.py",
    "origins.py",  # origin patterns, parsed for config's check and matched by web/cors.py
    "ratelimit.py",
    "tasks.py",  # ending background tasks (cancel_and_wait): imports only asyncio
    "__init__.py",  # PLUGIN_NAME and the version: imports nothing
)
PROTOCOL = _engine("protocol/")
# the plugin's layers, top to bottom; the host stands beside them (it imports none of them)
LAYERS = [
    Layer("hooks", (f"{HOOKS}/",)),
    Layer("web", _engine("web/")),
    Layer("engine core", ENGINE_CORE),
    Layer("backends", BACKENDS),
]


def source_prefix(source: str) -> str:
    """The module name (prefix) a source path stands for: ``websocket_realtime_engine/web/`` → ``….web``."""
    path = source.rstrip("/").removesuffix(".py").removesuffix("/__init__")
    return path.replace("/", ".")


def layer_rules(layers: list[Layer]) -> list[Rule]:
    """For each layer, a rule that it imports nothing of the layers above it."""
    rules = []
    for index, layer in enumerate(layers):
        above = tuple(source_prefix(source) for upper in layers[:index] for source in upper.sources)
        if above:
            rules.append(Rule(f"{layer.name} imports nothing above it", layer.sources, above))
    return rules


ENGINE = f"{PACKAGE}."
RULES = [
    Rule(
        "protocol is sans-I/O",
        PROTOCOL,
        ("asyncio", "aiohttp", ENGINE),
        allowed=(f"{PACKAGE}.protocol", f"{PACKAGE}.errors", f"{PACKAGE}.publication"),
    ),
    *layer_rules(LAYERS),
    Rule("the engine core and backends know no aiohttp", ENGINE_CORE + BACKENDS, ("aiohttp",)),
    Rule("the engine knows no pluggy, host or hooks", (f"{PACKAGE}/",), ("pluggy", HOST, HOOKS)),
    Rule("the host imports no plugin module", (f"{HOST}/",), (PACKAGE, HOOKS, "shopologic_plugins")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(source: str, importer: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports (at any depth, TYPE_CHECKING included), as absolute names.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``.
    """
    found: set[str] = set()
    package = importer if is_package else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _matches(name: str, prefix: str) -> bool:
    return name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".") else f"{prefix}.")


def violations(rule: Rule, module: str, imports: set[str]) -> list[str]:
    bad = []
    for name in sorted(imports):
        if any(_matches(name, prefix) for prefix in rule.forbidden) and not any(
            _matches(name, prefix) for prefix in rule.allowed
        ):
            bad.append(f"{module} imports {name} ({rule.name})")
    return bad


def package_modules(package: str = PACKAGE) -> list[Path]:
    return sorted(path for path in (ROOT / package).rglob("*.py") if "__pycache__" not in path.parts)


def governed(rule: Rule) -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in package_modules(package)
        if any(path.relative_to(ROOT).as_posix().startswith(source) for source in rule.sources)
    ]


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def import_graph(package: str) -> dict[str, set[str]]:
    """The package's modules, each with the modules of the same package it imports (itself excluded)."""
    graph: dict[str, set[str]] = {}
    for path in package_modules(package):
        importer = module_name(path)
        graph[importer] = {name for name in imports_of(path) if _matches(name, package) and name != importer}
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """One import cycle of ``graph`` as ``[a, b, …, a]``, or ``[]`` when there is none (depth-first search)."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str]:
        path.append(module)
        on_path.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported in on_path:
                return [*path[path.index(imported) :], imported]
            if imported not in done:
                cycle = visit(imported)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(module)
        done.add(module)
        return []

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return []


# -- the rules on the sources ------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_imports_point_one_way(rule: Rule) -> None:
    paths = governed(rule)
    assert paths, f"no module is governed by {rule.name!r}: the layout changed, update the rule"
    problems = [problem for path in paths for problem in violations(rule, module_name(path), imports_of(path))]
    assert problems == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    cycle = find_cycle(import_graph(package))
    assert cycle == [], "import cycle: " + " → ".join(cycle)


def test_every_engine_module_is_in_a_layer() -> None:
    sources = [*PROTOCOL, *(source for layer in LAYERS for source in layer.sources)]
    lost = [
        path.relative_to(ROOT).as_posix()
        for path in package_modules(PACKAGE)
        if not any(path.relative_to(ROOT).as_posix().startswith(source) for source in sources)
    ]
    assert lost == [], "modules no layer rule governs: add them to the layer table"


def test_every_layer_the_rules_name_exists() -> None:
    for folder in ("protocol", "broker", "presence", "db", "web"):
        assert (PACKAGE_ROOT / folder / "__init__.py").is_file(), folder
    for module in ("node.py", "hub.py", "connection.py", "errors.py", "dispatch.py", "runtime.py", "client.py"):
        assert (PACKAGE_ROOT / module).is_file(), module
    for module in ("__init__.py", "lifecycle.py", "commerce.py", "commands.py", "state.py", "hookspecs.py"):
        assert (ROOT / HOOKS / module).is_file(), f"hooks/{module}"
    assert (ROOT / "migrations" / "env.py").is_file() and (ROOT / "migrations" / "versions").is_dir()
    for moved in ("hooks", "migrations", "hookspecs.py", "commands.py"):
        assert not (PACKAGE_ROOT / moved).exists(), f"{PACKAGE}/{moved} belongs at the top level"


def test_the_engine_package_data_names_files_that_exist() -> None:
    """The engine installs on its own: its package data is its own files (no migrations, no alembic.ini)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"][PACKAGE]
    assert patterns and all(list(PACKAGE_ROOT.glob(pattern)) for pattern in patterns), patterns


# -- the checker itself ------------------------------------------------------------------------------


def test_the_parser_sees_the_imports_of_real_modules() -> None:
    native = imports_of(PACKAGE_ROOT / "protocol" / "native.py")
    assert {"orjson", f"{PACKAGE}.errors"} <= native
    defaults = imports_of(ROOT / HOST / "defaults.py")
    # ``from shopologic import __version__`` is the package itself: ``__version__`` is no module
    assert {"aiohttp", HOST, f"{HOST}.contracts", f"{HOST}.hookspecs"} <= defaults
    commerce = imports_of(ROOT / HOOKS / "commerce.py")
    # ``from .outbox import write_outbox`` in hooks/commerce.py is the module hooks.outbox
    assert {f"{HOOKS}.outbox", "shopologic.hookspecs", f"{PACKAGE}.db.outbox"} <= commerce


@pytest.mark.parametrize(
    ("source", "importer", "expected"),
    [
        ("import asyncio.events", f"{PACKAGE}.protocol.native", {"asyncio.events"}),
        ("from . import channels", f"{PACKAGE}.protocol.native", {f"{PACKAGE}.protocol.channels"}),
        ("from .. import node", f"{PACKAGE}.protocol.native", {f"{PACKAGE}.node"}),
        ("from ..web.app import NODE_KEY", f"{PACKAGE}.broker.memory", {f"{PACKAGE}.web.app"}),
        ("from . import auth", f"{PACKAGE}.protocol", {f"{PACKAGE}.protocol.auth"}),
        ("from websocket_realtime_engine import PLUGIN_NAME", f"{PACKAGE}.node", {PACKAGE}),
        ("def f():\n    import aiohttp.web\n", f"{PACKAGE}.hub", {"aiohttp.web"}),
        ("from .state import STATE", f"{HOOKS}.commerce", {f"{HOOKS}.state"}),
        (
            "if TYPE_CHECKING:\n    from hooks.state import STATE\n",
            f"{PACKAGE}.db.models",
            {f"{HOOKS}.state"},
        ),
    ],
)
def test_the_parser_resolves_import_forms(source: str, importer: str, expected: set[str]) -> None:
    is_package = importer == f"{PACKAGE}.protocol"
    assert imported_modules(source, importer, is_package) == expected


@pytest.mark.parametrize(
    ("rule_name", "module", "source", "bad"),
    [
        ("protocol is sans-I/O", f"{PACKAGE}.protocol.native", "import asyncio", "asyncio"),
        ("protocol is sans-I/O", f"{PACKAGE}.protocol.native", "from aiohttp import web", "aiohttp"),
        (
            "protocol is sans-I/O",
            f"{PACKAGE}.protocol.native",
            "from websocket_realtime_engine.node import Node",
            f"{PACKAGE}.node",
        ),
        (
            "protocol is sans-I/O",
            f"{PACKAGE}.protocol.native",
            "from websocket_realtime_engine import config",
            f"{PACKAGE}.config",
        ),
        (
            "backends imports nothing above it",
            f"{PACKAGE}.db.recorder",
            "from websocket_realtime_engine.web import rest",
            f"{PACKAGE}.web.rest",
        ),
        (
            "backends imports nothing above it",
            f"{PACKAGE}.broker.memory",
            "from ..node import Node",
            f"{PACKAGE}.node",
        ),
        ("the engine core and backends know no aiohttp", f"{PACKAGE}.node", "import aiohttp", "aiohttp"),
        (
            "engine core imports nothing above it",
            f"{PACKAGE}.hub",
            "from websocket_realtime_engine.web.app import NODE_KEY",
            f"{PACKAGE}.web.app",
        ),
        ("web imports nothing above it", f"{PACKAGE}.web.rest", "from hooks import commerce", f"{HOOKS}.commerce"),
        ("the engine knows no pluggy, host or hooks", f"{PACKAGE}.node", "import pluggy", "pluggy"),
        (
            "the engine knows no pluggy, host or hooks",
            f"{PACKAGE}.web.app",
            "from shopologic.platform import Platform",
            "shopologic.platform",
        ),
        (
            "the host imports no plugin module",
            f"{HOST}.cli",
            "def build_parser():\n    from websocket_realtime_engine import commands\n",
            PACKAGE,
        ),
        (
            "the host imports no plugin module",
            f"{HOST}.hookspecs",
            "if TYPE_CHECKING:\n    from hooks.state import STATE\n",
            f"{HOOKS}.state",
        ),
    ],
)
def test_the_rules_catch_a_wrong_way_import(rule_name: str, module: str, source: str, bad: str) -> None:
    rule = next(rule for rule in RULES if rule.name == rule_name)
    assert violations(rule, module, imported_modules(source, module)) == [f"{module} imports {bad} ({rule_name})"]


def test_the_rules_allow_what_the_layers_permit() -> None:
    protocol = RULES[0]
    allowed = "import orjson\nfrom websocket_realtime_engine.errors import ChannelError\nfrom . import channels\n"
    importer = f"{PACKAGE}.protocol.native"
    assert violations(protocol, importer, imported_modules(allowed, importer)) == []
    web = next(rule for rule in RULES if rule.name == "web imports nothing above it")
    web_imports = {"aiohttp", f"{PACKAGE}.node", f"{PACKAGE}.db.recorder"}
    assert violations(web, f"{PACKAGE}.web.app", web_imports) == []
    hooks = next(rule for rule in RULES if rule.name == "the host imports no plugin module")
    assert violations(hooks, f"{HOST}.platform", {"pluggy", f"{HOST}.contracts", "importlib"}) == []


def test_the_layer_rules_follow_the_table() -> None:
    names = {rule.name: rule for rule in layer_rules(LAYERS)}
    assert list(names) == [
        "web imports nothing above it",
        "engine core imports nothing above it",
        "backends imports nothing above it",
    ]
    backends = names["backends imports nothing above it"].forbidden
    assert {HOOKS, f"{PACKAGE}.web", f"{PACKAGE}.node", f"{PACKAGE}.session"} <= set(backends)
    assert f"{PACKAGE}.errors" not in backends and PACKAGE not in backends


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, []),  # a diamond is no cycle
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"x": {"a"}, "a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ],
)
def test_find_cycle_reports_the_cycle(graph: dict[str, set[str]], cycle: list[str]) -> None:
    assert find_cycle(graph) == cycle


def test_the_import_graph_counts_function_level_and_type_checking_imports() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shopologic.platform import Platform\n"
    importer = f"{HOST}.hookspecs"
    assert f"{HOST}.platform" in imported_modules(source, importer)
    hidden = "def secret(request):\n    from shopologic.platform import PLATFORM_KEY\n"
    assert f"{HOST}.platform" in imported_modules(hidden, f"{HOST}.defaults")
