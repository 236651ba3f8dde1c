"""Imports point one way (shared/DESIGN.md's layer table), read from the source with ``ast``.

host → hooks → web → engine (node, hub, connection) → backends (broker, presence, db); ``protocol``
is sans-I/O: no asyncio, no aiohttp, no other engine layer but ``errors``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "websocket_realtime_engine"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent / PACKAGE


@dataclass(frozen=True)
class Rule:
    """Modules matching ``sources`` (paths relative to the package) must not import ``forbidden``."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()  # for "no engine module except …" rules


ENGINE = f"{PACKAGE}."
RULES = [
    Rule(
        "protocol is sans-I/O",
        ("protocol/",),
        ("asyncio", "aiohttp", ENGINE),
        allowed=(f"{PACKAGE}.protocol", f"{PACKAGE}.errors"),
    ),
    Rule(
        "backends know no web or hooks",
        ("broker/", "presence/", "history/", "db/"),
        (f"{PACKAGE}.web", f"{PACKAGE}.hooks"),
    ),
    Rule(
        "the engine knows no web, hooks or aiohttp",
        ("node.py", "hub.py", "connection.py"),
        (f"{PACKAGE}.web", f"{PACKAGE}.hooks", "aiohttp"),
    ),
    Rule("web knows no hooks", ("web/",), (f"{PACKAGE}.hooks",)),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = PACKAGE_ROOT.parent.joinpath(*dotted.split("."))
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


def violations(rule: Rule, module: str, imports: set[str]) -> list[str]:
    def matches(name: str, prefix: str) -> bool:
        return name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".") else f"{prefix}.")

    bad = []
    for name in sorted(imports):
        if any(matches(name, prefix) for prefix in rule.forbidden) and not any(
            matches(name, prefix) for prefix in rule.allowed
        ):
            bad.append(f"{module} imports {name} ({rule.name})")
    return bad


def package_modules() -> list[Path]:
    return sorted(path for path in PACKAGE_ROOT.rglob("*.py") if "migrations" not in path.parts)


def governed(rule: Rule) -> list[Path]:
    return [
        path
        for path in package_modules()
        if any(path.relative_to(PACKAGE_ROOT).as_posix().startswith(source) for source in rule.sources)
    ]


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_imports_point_one_way(rule: Rule) -> None:
    paths = governed(rule)
    assert paths, f"no module is governed by {rule.name!r}: the layout changed, update the rule"
    problems = [problem for path in paths for problem in violations(rule, module_name(path), imports_of(path))]
    assert problems == []


def test_every_layer_the_rules_name_exists() -> None:
    for folder in ("protocol", "broker", "presence", "db", "web", "hooks"):
        assert (PACKAGE_ROOT / folder / "__init__.py").is_file(), folder
    for module in ("node.py", "hub.py", "connection.py", "errors.py"):
        assert (PACKAGE_ROOT / module).is_file(), module


# -- the checker itself ------------------------------------------------------------------------------


def test_the_parser_sees_the_imports_of_real_modules() -> None:
    native = imports_of(PACKAGE_ROOT / "protocol" / "native.py")
    assert {"orjson", f"{PACKAGE}.errors", f"{PACKAGE}.protocol.channels"} <= native
    socket = imports_of(PACKAGE_ROOT / "web" / "socket.py")
    # ``from websocket_realtime_engine import errors`` is the errors module; the function-level import counts
    assert {"aiohttp", f"{PACKAGE}.errors", f"{PACKAGE}.node", f"{PACKAGE}.web.app"} <= socket


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
        (
            "if TYPE_CHECKING:\n    from websocket_realtime_engine.hooks.state import STATE\n",
            f"{PACKAGE}.db.models",
            {f"{PACKAGE}.hooks.state"},
        ),
    ],
)
def test_the_parser_resolves_import_forms(source: str, importer: str, expected: set[str]) -> None:
    is_package = importer == f"{PACKAGE}.protocol"
    assert imported_modules(source, importer, is_package) == expected


@pytest.mark.parametrize(
    ("rule_name", "module", "source", "bad"),
    [
        ("protocol is sans-I/O", "protocol.native", "import asyncio", "asyncio"),
        ("protocol is sans-I/O", "protocol.native", "from aiohttp import web", "aiohttp"),
        (
            "protocol is sans-I/O",
            "protocol.native",
            "from websocket_realtime_engine.node import Node",
            f"{PACKAGE}.node",
        ),
        (
            "protocol is sans-I/O",
            "protocol.native",
            "from websocket_realtime_engine import config",
            f"{PACKAGE}.config",
        ),
        (
            "backends know no web or hooks",
            "db.recorder",
            "from websocket_realtime_engine.web import rest",
            f"{PACKAGE}.web.rest",
        ),
        ("backends know no web or hooks", "broker.memory", "from ..hooks import state", f"{PACKAGE}.hooks.state"),
        ("the engine knows no web, hooks or aiohttp", "node", "import aiohttp", "aiohttp"),
        (
            "the engine knows no web, hooks or aiohttp",
            "hub",
            "from websocket_realtime_engine.web.app import NODE_KEY",
            f"{PACKAGE}.web.app",
        ),
        (
            "web knows no hooks",
            "web.rest",
            "from websocket_realtime_engine.hooks import commerce",
            f"{PACKAGE}.hooks.commerce",
        ),
    ],
)
def test_the_rules_catch_a_wrong_way_import(rule_name: str, module: str, source: str, bad: str) -> None:
    rule = next(rule for rule in RULES if rule.name == rule_name)
    importer = f"{PACKAGE}.{module}"
    assert violations(rule, importer, imported_modules(source, importer)) == [f"{importer} imports {bad} ({rule_name})"]


def test_the_rules_allow_what_the_layers_permit() -> None:
    protocol = RULES[0]
    allowed = "import orjson\nfrom websocket_realtime_engine.errors import ChannelError\nfrom . import channels\n"
    importer = f"{PACKAGE}.protocol.native"
    assert violations(protocol, importer, imported_modules(allowed, importer)) == []
    web = next(rule for rule in RULES if rule.name == "web knows no hooks")
    web_imports = {"aiohttp", f"{PACKAGE}.node", f"{PACKAGE}.db.recorder"}
    assert violations(web, f"{PACKAGE}.web.app", web_imports) == []
