"""Plugin manifests (``plugin.json``): discovery and validation.

A manifest that does not validate is a :class:`ManifestError` naming the file and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?$")
MODULE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ManifestError(ValueError):
    """A manifest could not be read or does not validate."""


class RequiresSchema(Schema):
    python = fields.String(load_default=">=3.11")
    platform = fields.String(load_default=">=0.1")
    packages = fields.List(fields.String(), load_default=list)
    plugins = fields.List(fields.String(), load_default=list)


class ManifestSchema(Schema):
    """The fields of ``plugin.json``."""

    name = fields.String(
        required=True, validate=validate.Regexp(NAME_PATTERN, error="must be lowercase letters, digits and dashes")
    )
    version = fields.String(
        required=True, validate=validate.Regexp(VERSION_PATTERN, error="must be a version like 1.2.3")
    )
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))
    hooks = fields.List(
        fields.String(validate=validate.Regexp(MODULE_PATTERN, error="must be a module path")), required=True
    )
    hookspecs = fields.List(
        fields.String(validate=validate.Regexp(MODULE_PATTERN, error="must be a module path")), load_default=list
    )
    migrations = fields.String(load_default=None, allow_none=True)
    settings = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)
    requires = fields.Nested(RequiresSchema, load_default=lambda: RequiresSchema().load({}))


@dataclass(frozen=True)
class Manifest:
    """A validated plugin manifest and the folder it was found in."""

    name: str
    version: str
    description: str
    hooks: tuple[str, ...]
    hookspecs: tuple[str, ...]
    migrations: Path | None
    settings: dict[str, Any]
    requires: dict[str, Any]
    path: Path = field(compare=False)


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """Flatten marshmallow's nested messages to the first ``(field.path, message)``."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
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
    migrations = None
    if data["migrations"]:
        migrations = (path.parent / data["migrations"]).resolve()
        if not (migrations / "env.py").is_file():
            raise ManifestError(f"{path}: field 'migrations': {data['migrations']!r} has no alembic env.py")
    return Manifest(
        name=data["name"],
        version=data["version"],
        description=data["description"],
        hooks=tuple(data["hooks"]),
        hookspecs=tuple(data["hookspecs"]),
        migrations=migrations,
        settings=data["settings"],
        requires=data["requires"],
        path=path,
    )


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
