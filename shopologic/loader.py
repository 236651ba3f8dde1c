"""Loading a plugin's modules under the host's own namespace, never by editing ``sys.path``.

A plugin's folder becomes the package ``shopologic_plugins.<name>`` (its manifest name with ``-`` as
``_``), created with :mod:`importlib` with the folder as its only search location. The manifest's
``hooks/commerce.py`` is then the module ``shopologic_plugins.<name>.hooks.commerce``: files of one
plugin may import each other relatively (``from .state import STATE``), and two plugins that both
have a ``hooks/commerce.py`` each get their own module.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import PurePosixPath
from types import ModuleType

from shopologic.contracts import PluginError
from shopologic.manifest import Manifest

NAMESPACE = "shopologic_plugins"


def package_name(manifest: Manifest) -> str:
    """The package a plugin's folder is loaded as: ``shopologic_plugins.<name with - as _>``."""
    return f"{NAMESPACE}.{manifest.name.replace('-', '_')}"


def module_name(manifest: Manifest, relative_path: str) -> str:
    """The module name of a file of the plugin's folder (``hooks/commerce.py`` → ``….hooks.commerce``)."""
    parts = PurePosixPath(relative_path).with_suffix("").parts
    return ".".join((package_name(manifest), *parts))


def _new_package(name: str, locations: list[str]) -> ModuleType:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = locations
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    return package


def plugin_package(manifest: Manifest) -> ModuleType:
    """The package of a plugin's folder, created on first use (and again if the folder changed)."""
    folder = str(manifest.folder)
    root = sys.modules.get(NAMESPACE) or _new_package(NAMESPACE, [])
    name = package_name(manifest)
    package = sys.modules.get(name)
    if package is not None and list(getattr(package, "__path__", ())) == [folder]:
        return package
    # another folder under the same plugin name (tests do this): forget the old package's modules
    for stale in [module for module in sys.modules if module == name or module.startswith(f"{name}.")]:
        del sys.modules[stale]
    importlib.invalidate_caches()  # the folder's files may be newer than the finders' listings
    package = _new_package(name, [folder])
    setattr(root, name.rpartition(".")[2], package)
    return package


def load_plugin_module(manifest: Manifest, relative_path: str) -> ModuleType:
    """Import one file of a plugin's folder (a path the manifest names, e.g. ``hooks/lifecycle.py``).

    Imported once per process and then shared: the host's plugin manager, its command relay and the
    tests all get the same module object. Any failure is a :class:`PluginError` naming the manifest.
    """
    plugin_package(manifest)
    try:
        return importlib.import_module(module_name(manifest, relative_path))
    except Exception as exc:  # noqa: BLE001 - any failure while importing a plugin is the plugin's
        raise PluginError(f"{manifest.path}: hook module {relative_path!r} cannot be imported: {exc}") from None
