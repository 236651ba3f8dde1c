"""Plugins' modules load under the host's namespace: two ``hooks/commerce.py`` both run, ``sys.path`` is untouched."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shopologic.config import HostSettings, normalize_database_url
from shopologic.loader import load_plugin_module, module_name
from shopologic.manifest import load_manifest
from shopologic.platform import Platform, PluginError, await_all

ORDER = {"id": 7, "status": "paid", "total": "12.50"}

COMMERCE = '''"""{name}'s hooks/commerce.py: it records through a sibling module, imported relatively."""

from shopologic.hookspecs import hookimpl

from .journal import calls


@hookimpl
def order_created(order):
    calls.append(("{name}", order["id"]))
'''


def write_plugin(plugins: Path, name: str, *, init_file: bool) -> Path:
    """A plugin folder with ``hooks/commerce.py`` and ``hooks/journal.py`` (``hooks/__init__.py`` if asked)."""
    folder = plugins / name
    (folder / "hooks").mkdir(parents=True)
    if init_file:
        (folder / "hooks" / "__init__.py").write_text("")
    (folder / "hooks" / "journal.py").write_text("calls: list[tuple[str, object]] = []\n")
    (folder / "hooks" / "commerce.py").write_text(COMMERCE.format(name=name))
    manifest = {"name": name, "version": "1.0.0", "description": f"{name} for the tests"}
    (folder / "plugin.json").write_text(json.dumps({**manifest, "hooks": ["hooks/commerce.py"]}))
    return folder


def two_shops(tmp_path: Path) -> HostSettings:
    """Host settings whose only plugins are ``shop-alpha`` and ``shop-beta``, each with a ``hooks/commerce.py``."""
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "shop-alpha", init_file=True)
    write_plugin(plugins, "shop-beta", init_file=False)  # a namespace package works as well
    return HostSettings(
        var_dir=tmp_path / "var",
        database_url=normalize_database_url(f"sqlite:///{tmp_path / 'var' / 'platform.db'}"),
        plugin_paths=(plugins,),
        secret_key="test-secret",
    )


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    """A loaded platform of the two shops, closed afterwards."""
    platform = Platform(two_shops(tmp_path))
    try:
        await platform.load()
        yield platform
    finally:
        await platform.close()


async def test_two_plugins_with_a_hooks_commerce_each_both_receive_one_order_created(tmp_path: Path) -> None:
    path_before = list(sys.path)
    platform = Platform(two_shops(tmp_path))
    try:
        await platform.load()
        assert await platform.activate("shop-alpha") and await platform.activate("shop-beta")
        await await_all(platform.hook.order_created(order=ORDER))
        alpha = sys.modules["shopologic_plugins.shop_alpha.hooks.commerce"]
        beta = sys.modules["shopologic_plugins.shop_beta.hooks.commerce"]
    finally:
        await platform.close()
    assert alpha is not beta
    assert alpha.calls == [("shop-alpha", "7")] and beta.calls == [("shop-beta", "7")]
    assert sys.path == path_before, "the host edited sys.path"


async def test_the_modules_are_those_the_plugin_manager_registered(platform: Platform) -> None:
    await platform.activate("shop-alpha")
    manifest = platform.manifest("shop-alpha")
    module = load_plugin_module(manifest, "hooks/commerce.py")
    assert module.__name__ == module_name(manifest, "hooks/commerce.py")
    assert module.__name__ == "shopologic_plugins.shop_alpha.hooks.commerce"
    assert platform.pm.get_plugin("shop-alpha:hooks/commerce.py") is module
    assert Path(module.__file__ or "") == manifest.folder / "hooks" / "commerce.py"


def test_a_plugin_folder_loaded_again_from_elsewhere_gets_fresh_modules(tmp_path: Path) -> None:
    first = load_manifest(write_plugin(tmp_path / "one", "shop-gamma", init_file=True) / "plugin.json")
    second = load_manifest(write_plugin(tmp_path / "two", "shop-gamma", init_file=True) / "plugin.json")
    old = load_plugin_module(first, "hooks/commerce.py")
    new = load_plugin_module(second, "hooks/commerce.py")
    assert old is not new and Path(new.__file__ or "").parent.parent == second.folder
    assert load_plugin_module(second, "hooks/commerce.py") is new, "loaded once per folder"


def test_a_module_that_fails_to_import_is_a_plugin_error_naming_the_manifest(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "shop-broken", init_file=True)
    (folder / "hooks" / "commerce.py").write_text("import no_such_module_anywhere\n")
    manifest = load_manifest(folder / "plugin.json")
    with pytest.raises(PluginError, match=r"plugin\.json: hook module 'hooks/commerce\.py' cannot be imported: "):
        load_plugin_module(manifest, "hooks/commerce.py")
