"""Plugin manifests (``plugin.json``): discovery and validation.

A manifest names the plugin (``name``, ``version``, ``description``), the files of its folder the
host loads (``hooks``: hook implementations; ``hookspecs``: the plugin's own hookspecs; each a path
relative to the folder, such as ``"hooks/lifecycle.py"``), its alembic folder (``migrations``) and
what it needs (``requires``). A manifest that does not validate is a :class:`ManifestError` naming
the file and the field.

``requires`` is checked against the running process by :func:`unmet_requirements` (the host calls it
before activating or loading a plugin): the Python version and the platform's (version specifiers,
``">=3.11"``), installed distributions (PEP 508 requirements, ``"aiohttp>=3.14"``, read with
:mod:`importlib.metadata`) and other plugins, which must be active.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from shopologic import __version__

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?$")


class ManifestError(ValueError):
    """A manifest could not be read or does not validate."""


def _version_specifier(value: str) -> None:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValidationError(f"{value!r} is not a version specifier like '>=3.11' or '>=0.1,<2'") from None


def _package_requirement(value: str) -> None:
    try:
        Requirement(value)
    except InvalidRequirement:
        raise ValidationError(f"{value!r} is not a requirement like 'aiohttp>=3.14' (PEP 508)") from None


class RequiresSchema(Schema):
    """``requires``: what the plugin needs of the process it is activated in."""

    python = fields.String(load_default=">=3.11", validate=_version_specifier)
    platform = fields.String(load_default=">=0.1", validate=_version_specifier)
    packages = fields.List(fields.String(validate=_package_requirement), load_default=list)
    plugins = fields.List(
        fields.String(validate=validate.Regexp(NAME_PATTERN, error="must be a plugin name")), load_default=list
    )


class ManifestSchema(Schema):
    """The fields of ``plugin.json``."""

    name = fields.String(
        required=True, validate=validate.Regexp(NAME_PATTERN, error="must be lowercase letters, digits and dashes")
    )
    version = fields.String(
        required=True, validate=validate.Regexp(VERSION_PATTERN, error="must be a version like 1.2.3")
    )
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))
    hooks = fields.List(fields.String(), required=True)
    hookspecs = fields.List(fields.String(), load_default=list)
    migrations = fields.String(load_default=None, allow_none=True)
    requires = fields.Nested(RequiresSchema, load_default=lambda: RequiresSchema().load({}))


@dataclass(frozen=True)
class Manifest:
    """A validated plugin manifest and the folder it was found in."""

    name: str
    version: str
    description: str
    hooks: tuple[str, ...]  # files of the plugin's folder, relative to it: "hooks/lifecycle.py"
    hookspecs: tuple[str, ...]  # the same, for the plugin's own hookspecs
    migrations: Path | None  # the alembic folder, resolved
    requires: dict[str, Any]
    path: Path = field(compare=False)

    @property
    def folder(self) -> Path:
        """The plugin's folder: where ``hooks``, ``hookspecs`` and ``migrations`` are found."""
        return self.path.parent.resolve()


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """Flatten marshmallow's nested messages to the first ``(field.path, message)``."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        if key == "_schema":  # the field's value itself is wrong (a string where an object belongs)
            return _first_error(value, prefix)
        return _first_error(value, f"{prefix}.{key}" if prefix else str(key))
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], prefix) if isinstance(messages[0], dict | list) else (prefix, str(messages[0]))
    return prefix, str(messages)


def load_manifest(path: Path) -> Manifest:
    """Read and validate one ``plugin.json``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: the manifest must be a JSON object")
    try:
        data = ManifestSchema().load(raw)
    except ValidationError as exc:
        field_name, message = _first_error(exc.messages)
        raise ManifestError(f"{path}: field {field_name!r}: {message}") from None
    folder = path.parent.resolve()
    for field_name in ("hooks", "hookspecs"):
        for index, value in enumerate(data[field_name]):
            problem = _module_file_problem(folder, value)
            if problem:
                raise ManifestError(f"{path}: field '{field_name}.{index}': {value!r} {problem}")
    migrations = None
    if data["migrations"]:
        migrations = (folder / data["migrations"]).resolve()
        if not migrations.is_relative_to(folder):
            raise ManifestError(f"{path}: field 'migrations': {data['migrations']!r} is outside the plugin folder")
        if not (migrations / "env.py").is_file():
            raise ManifestError(f"{path}: field 'migrations': {data['migrations']!r} has no alembic env.py")
    return Manifest(
        name=data["name"],
        version=data["version"],
        description=data["description"],
        hooks=tuple(data["hooks"]),
        hookspecs=tuple(data["hookspecs"]),
        migrations=migrations,
        requires=data["requires"],
        path=path,
    )


def _module_file_problem(folder: Path, value: str) -> str | None:
    """What is wrong with a ``hooks``/``hookspecs`` entry, or ``None``: a ``.py`` path inside the folder.

    The host imports the file as a module named after its path, so each part must be an identifier.
    Whether the file exists is not checked here: a manifest whose file went missing (a broken upgrade)
    still loads, so the plugin shows as broken and can be deactivated instead of failing every command.
    """
    relative = PurePosixPath(value)
    if relative.is_absolute() or "\\" in value:
        return "must be a path relative to the plugin folder, with / between folders"
    if relative.suffix != ".py":
        return "must be the path of a .py file"
    if not (folder / relative).resolve().is_relative_to(folder):
        return "is outside the plugin folder"
    if not all(part.isidentifier() for part in relative.with_suffix("").parts):
        return "must name folders and a file that are Python identifiers (it is imported as a module)"
    return None


def unmet_requirements(manifest: Manifest, active: Collection[str]) -> list[str]:
    """What of the manifest's ``requires`` this process does not meet, each said with what it has
    (``"Python >=3.12 (this is Python 3.11.7)"``); empty when everything is met.

    :param active: the names of the active plugins, for ``requires.plugins``.
    """
    requires = manifest.requires
    problems = []
    python = ".".join(str(part) for part in sys.version_info[:3])
    if not SpecifierSet(requires["python"]).contains(python, prereleases=True):
        problems.append(f"Python {requires['python']} (this is Python {python})")
    if not SpecifierSet(requires["platform"]).contains(__version__, prereleases=True):
        problems.append(f"platform {requires['platform']} (this is Shopologic {__version__})")
    problems.extend(filter(None, map(_unmet_package, requires["packages"])))
    problems.extend(
        f"plugin {name} (not active: plugin activate {name})" for name in requires["plugins"] if name not in active
    )
    return problems


def _unmet_package(text: str) -> str | None:
    """What is wrong with one ``requires.packages`` entry here, or ``None`` when it is met (or its
    environment marker says it does not apply). Extras (``psycopg[binary]``) are not checked."""
    requirement = Requirement(text)
    if requirement.marker is not None and not requirement.marker.evaluate():
        return None
    try:
        installed = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return f"package {text} (not installed)"
    if not requirement.specifier.contains(installed, prereleases=True):
        return f"package {text} (installed: {requirement.name} {installed})"
    return None


def discover_manifests(folders: Iterable[Path]) -> list[Manifest]:
    """Every ``plugin.json`` directly in, or one level below, each folder; names must be unique."""
    found: dict[str, Manifest] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted([folder / "plugin.json", *folder.glob("*/plugin.json")]):
            if not path.is_file():
                continue
            manifest = load_manifest(path.resolve())
            other = found.get(manifest.name)
            if other is not None and other.path != manifest.path:
                raise ManifestError(f"{path}: field 'name': {manifest.name!r} is already used by {other.path}")
            found[manifest.name] = manifest
    return list(found.values())
