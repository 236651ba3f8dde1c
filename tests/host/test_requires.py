"""``requires`` in ``plugin.json``: checked at activation and at every load, malformed ones refused.

A plugin whose Python, platform, package or plugin requirement is not met is refused by
``plugin activate`` with one ``error:`` line naming the plugin, the requirement and what is installed,
before its hooks are registered or its migrations run (its ``platform_loaded`` hook and its alembic
``env.py`` each leave a file behind when they run); an active plugin that stops meeting one (a
package downgraded) is loaded as broken, with the reason.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import shopologic
from shopologic.config import HostSettings
from shopologic.manifest import ManifestError, load_manifest
from shopologic.platform import Platform
from tests.conftest import TEST_PLUGINS
from tests.host.test_cli import Cli, assert_ok, assert_one_line_error

NAME = "needy-plugin"
PYTHON = ".".join(str(part) for part in sys.version_info[:3])
AIOHTTP = importlib.metadata.version("aiohttp")
HOOK_MODULE = '''"""Leaves a file named ``registered`` next to itself once it is registered and called."""

from pathlib import Path

from shopologic.contracts import MigrationSource
from shopologic.hookspecs import hookimpl


@hookimpl
def platform_loaded(platform):
    Path(__file__).with_name("registered").touch()


@hookimpl
def plugin_migrations(script_location, platform):
    return MigrationSource("needy-plugin", script_location, "needy_alembic_version", "needy_")
'''
ENV_PY = '''"""An alembic env.py that only says it ran."""

from pathlib import Path

Path(__file__).with_name("migrated").touch()
'''

PluginFactory = Callable[[dict[str, Any]], Path]


@pytest.fixture
def plugins_folder(tmp_path: Path) -> Path:
    return tmp_path / "plugins"


@pytest.fixture
def env(platform_env: dict[str, str], plugins_folder: Path) -> dict[str, str]:
    """The platform's environment with the tests' plugins and the folder of this test's plugin."""
    return {**platform_env, "SHOPOLOGIC_PLUGIN_PATH": os.pathsep.join([str(TEST_PLUGINS), str(plugins_folder)])}


@pytest.fixture
def write_plugin(plugins_folder: Path) -> PluginFactory:
    """Write (or rewrite) the needy plugin with the given ``requires``; its ``plugin.json`` path."""

    def write(requires: dict[str, Any]) -> Path:
        folder = plugins_folder / "needy"
        (folder / "hooks").mkdir(parents=True, exist_ok=True)
        (folder / "hooks" / "sample.py").write_text(HOOK_MODULE, encoding="utf-8")
        (folder / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
        (folder / "migrations" / "env.py").write_text(ENV_PY, encoding="utf-8")
        manifest = {
            "name": NAME,
            "version": "1.0.0",
            "description": "A plugin of the tests that needs things",
            "hooks": ["hooks/sample.py"],
            "migrations": "migrations",
            "requires": requires,
        }
        path = folder / "plugin.json"
        path.write_text(json.dumps(manifest), encoding="utf-8")
        return path

    return write


def registered(manifest_path: Path) -> bool:
    """Whether the plugin's hooks were registered (and its ``platform_loaded`` called) since written."""
    return (manifest_path.parent / "hooks" / "registered").exists()


def migrated(manifest_path: Path) -> bool:
    """Whether alembic ran the plugin's migrations since it was written."""
    return (manifest_path.parent / "migrations" / "migrated").exists()


def state_line(cli: Cli, env: dict[str, str]) -> str:
    """The needy plugin's line of ``plugin list``."""
    (line,) = [line for line in assert_ok(cli("plugin", "list", env=env)).splitlines() if line.startswith(NAME)]
    return line


def stored_active(env: dict[str, str]) -> bool:
    """The needy plugin's activation state in the platform database (quicker than ``plugin list``)."""
    with sqlite3.connect(env["SHOPOLOGIC_DATABASE_URL"].removeprefix("sqlite:///")) as database:
        (active,) = database.execute("SELECT active FROM shopologic_plugins WHERE name = ?", (NAME,)).fetchone()
    return bool(active)


@pytest.mark.parametrize(
    ("requires", "fragments"),
    [
        ({"python": ">=3.99"}, ["Python >=3.99", f"(this is Python {PYTHON})"]),
        ({"python": f"<{sys.version_info[0]}.{sys.version_info[1]}"}, ["Python <", f"(this is Python {PYTHON})"]),
        ({"platform": ">=99.0"}, ["platform >=99.0", f"(this is Shopologic {shopologic.__version__})"]),
        ({"packages": ["aiohttp>=999"]}, ["package aiohttp>=999", f"(installed: aiohttp {AIOHTTP})"]),
        (
            {"packages": ["no-such-distribution-of-the-tests>=1"]},
            ["no-such-distribution-of-the-tests>=1 (not installed)"],
        ),
        ({"plugins": ["order-emitter"]}, ["plugin order-emitter (not active: plugin activate order-emitter)"]),
    ],
)
def test_an_unmet_requirement_refuses_activation_in_one_line(
    cli: Cli, env: dict[str, str], write_plugin: PluginFactory, requires: dict[str, Any], fragments: list[str]
) -> None:
    path = write_plugin(requires)
    assert_one_line_error(cli("plugin", "activate", NAME, env=env), f"cannot activate {NAME}: it requires", *fragments)
    assert not registered(path) and not migrated(path), "registered or migrated before its requirements were checked"
    assert not stored_active(env)


def test_every_unmet_requirement_is_named_in_the_one_line(
    cli: Cli, env: dict[str, str], write_plugin: PluginFactory
) -> None:
    write_plugin({"python": ">=3.99", "packages": ["aiohttp>=3", "aiohttp>=999", "no-such-distribution-of-the-tests"]})
    line = assert_one_line_error(cli("plugin", "activate", NAME, env=env))
    assert line == (
        f"error: cannot activate {NAME}: it requires Python >=3.99 (this is Python {PYTHON}), "
        f"package aiohttp>=999 (installed: aiohttp {AIOHTTP}), "
        "package no-such-distribution-of-the-tests (not installed)"
    )


def test_met_requirements_activate(cli: Cli, env: dict[str, str], write_plugin: PluginFactory) -> None:
    path = write_plugin(
        {
            "python": f"=={sys.version_info[0]}.{sys.version_info[1]}.*",
            "platform": f"=={shopologic.__version__}",
            "packages": [
                f"AIOHTTP>={AIOHTTP}",  # distribution names are compared normalised
                "psycopg[binary]>=3",  # extras are not checked, the distribution is
                "no-such-distribution-of-the-tests; python_version < '3'",  # a marker that does not apply
            ],
            "plugins": ["order-emitter"],
        }
    )
    assert_ok(cli("plugin", "activate", "order-emitter", env=env))
    assert assert_ok(cli("plugin", "activate", NAME, env=env)) == f"{NAME}: activated\n"
    assert registered(path) and migrated(path)
    assert "active" in state_line(cli, env).split()


@pytest.mark.parametrize(
    ("requires", "field", "detail"),
    [
        ({"python": "3.11"}, "requires.python", "'3.11' is not a version specifier like '>=3.11'"),
        ({"python": 3.11}, "requires.python", "Not a valid string"),
        ({"platform": "latest"}, "requires.platform", "'latest' is not a version specifier"),
        ({"packages": ["aiohttp", "aiohttp >> 3"]}, "requires.packages.1", "'aiohttp >> 3' is not a requirement"),
        ({"packages": "aiohttp>=3"}, "requires.packages", "Not a valid list"),
        ({"plugins": ["Order_Emitter"]}, "requires.plugins.0", "must be a plugin name"),
        ({"node": ">=18"}, "requires.node", "Unknown field"),
        ("aiohttp>=3", "requires", "Invalid input type"),
    ],
)
def test_a_malformed_requires_is_a_manifest_error_at_discovery(
    write_plugin: PluginFactory, requires: Any, field: str, detail: str
) -> None:
    path = write_plugin(requires).resolve()
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(caught.value).startswith(f"{path}: field {field!r}: "), caught.value
    assert detail in str(caught.value)


def test_a_malformed_requires_stops_every_command_in_one_line(
    cli: Cli, env: dict[str, str], write_plugin: PluginFactory
) -> None:
    path = write_plugin({"packages": ["aiohttp >> 3"]}).resolve()
    for command in (["plugin", "list"], ["plugin", "activate", NAME]):
        line = assert_one_line_error(cli(*command, env=env))
        assert line == (
            f"error: {path}: field 'requires.packages.0': 'aiohttp >> 3' is not a requirement like "
            "'aiohttp>=3.14' (PEP 508)"
        )


async def test_an_active_plugin_that_stops_meeting_a_requirement_loads_as_broken(
    cli: Cli, env: dict[str, str], write_plugin: PluginFactory
) -> None:
    path = write_plugin({"packages": ["aiohttp>=3"]})
    assert_ok(cli("plugin", "activate", NAME, env=env))
    write_plugin({"packages": ["aiohttp>=999"]})  # as if aiohttp had been downgraded since
    (path.parent / "hooks" / "registered").unlink()

    platform = Platform(HostSettings.from_env(env))
    try:
        await platform.load()
        assert platform.broken == {NAME: f"{NAME} requires package aiohttp>=999 (installed: aiohttp {AIOHTTP})"}
        assert not any(name.startswith(f"{NAME}:") for name, _ in platform.pm.list_name_plugin())
    finally:
        await platform.close()
    assert not registered(path)
    assert "active but broken" in state_line(cli, env)
    assert assert_ok(cli("plugin", "deactivate", NAME, env=env)) == f"{NAME}: deactivated\n"
