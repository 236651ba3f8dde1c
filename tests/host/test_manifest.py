"""``plugin.json`` validation: every bad manifest is one ManifestError naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shopologic.manifest import Manifest, ManifestError, discover_manifests, load_manifest
from tests.conftest import ROOT, TEST_PLUGINS

VALID: dict[str, Any] = {
    "name": "sample-plugin",
    "version": "1.2.3",
    "description": "A plugin written by the tests",
    "hooks": ["hooks/sample.py"],
}


def write_manifest(folder: Path, content: Any) -> Path:
    """Write ``content`` (a dict, as JSON, or raw text) to ``folder/plugin.json``, with ``hooks/sample.py``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hooks").mkdir(exist_ok=True)
    (folder / "hooks" / "sample.py").write_text('"""A hook module of the tests."""\n', encoding="utf-8")
    path = folder / "plugin.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def manifest_error(path: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return str(caught.value)


def test_a_valid_manifest_loads_with_its_defaults(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, VALID)
    manifest = load_manifest(path)
    assert manifest == Manifest(
        name="sample-plugin",
        version="1.2.3",
        description="A plugin written by the tests",
        hooks=("hooks/sample.py",),
        hookspecs=(),
        migrations=None,
        requires={"python": ">=3.11", "platform": ">=0.1", "packages": [], "plugins": []},
        path=path,
    )


def test_invalid_json_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, '{\n  "name": "sample-plugin",\n  "version": \n}')
    message = manifest_error(path)
    assert message.startswith(f"{path}: not valid JSON")
    assert "line 4" in message


@pytest.mark.parametrize("content", ["[]", '"plugin"', "42", "null"])
def test_a_manifest_that_is_not_an_object_names_the_file(tmp_path: Path, content: str) -> None:
    path = write_manifest(tmp_path, content)
    assert manifest_error(path) == f"{path}: the manifest must be a JSON object"


def test_an_unreadable_manifest_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plugin.json"
    path.mkdir()  # a folder where the file should be
    assert manifest_error(path).startswith(f"{path}: cannot be read")


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"name": None}, "name", "Field may not be null"),
        ({"name": 7}, "name", "Not a valid string"),
        ({"name": "Sample_Plugin"}, "name", "lowercase letters, digits and dashes"),
        ({"name": "-starts-with-a-dash"}, "name", "lowercase letters, digits and dashes"),
        ({"name": "x"}, "name", "lowercase letters, digits and dashes"),
        ({"version": "1.0"}, "version", "must be a version like 1.2.3"),
        ({"version": "v1.0.0"}, "version", "must be a version like 1.2.3"),
        ({"version": 1}, "version", "Not a valid string"),
        ({"description": ""}, "description", "Length must be between 1 and 500"),
        ({"hooks": "hooks/sample.py"}, "hooks", "Not a valid list"),
        ({"hooks": ["hooks/sample"]}, "hooks.0", "must be the path of a .py file"),
        ({"hooks": ["hooks/sample.py", "not a module"]}, "hooks.1", "must be the path of a .py file"),
        ({"hookspecs": ["../specs.py"]}, "hookspecs.0", "is outside the plugin folder"),
        ({"settings": {"port": 8080}}, "settings", "Unknown field"),
        ({"requires": {"packages": "aiohttp"}}, "requires.packages", "Not a valid list"),
    ],
)
def test_a_bad_field_is_named_with_the_file(tmp_path: Path, change: dict[str, Any], field: str, detail: str) -> None:
    path = write_manifest(tmp_path, {**VALID, **change})
    message = manifest_error(path)
    assert message.startswith(f"{path}: field {field!r}: "), message
    assert detail in message


@pytest.mark.parametrize("missing", ["name", "version", "description", "hooks"])
def test_a_missing_required_field_is_named_with_the_file(tmp_path: Path, missing: str) -> None:
    path = write_manifest(tmp_path, {key: value for key, value in VALID.items() if key != missing})
    assert manifest_error(path) == f"{path}: field {missing!r}: Missing data for required field."


def test_a_migrations_folder_without_env_py_is_refused(tmp_path: Path) -> None:
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    path = write_manifest(tmp_path, {**VALID, "migrations": "migrations"})
    assert manifest_error(path) == f"{path}: field 'migrations': 'migrations' has no alembic env.py"


def test_a_migrations_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {**VALID, "migrations": "nowhere"})
    assert manifest_error(path) == f"{path}: field 'migrations': 'nowhere' has no alembic env.py"


def test_a_migrations_folder_with_env_py_resolves_next_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "env.py").write_text("")
    manifest = load_manifest(write_manifest(tmp_path, {**VALID, "migrations": "migrations"}))
    assert manifest.migrations == (tmp_path / "migrations").resolve()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../outside.py", "is outside the plugin folder"),
        ("hooks/../../outside.py", "is outside the plugin folder"),
        ("/etc/hooks.py", "must be a path relative to the plugin folder, with / between folders"),
        ("my-hooks/sample.py", "must name folders and a file that are Python identifiers (it is imported as a module)"),
    ],
)
def test_a_hooks_path_outside_the_folder_is_refused(tmp_path: Path, entry: str, problem: str) -> None:
    (tmp_path / "outside.py").write_text("")  # exists, but not in the plugin's folder
    (tmp_path / "plugin" / "my-hooks").mkdir(parents=True)
    (tmp_path / "plugin" / "my-hooks" / "sample.py").write_text("")
    for field_name in ("hooks", "hookspecs"):
        path = write_manifest(tmp_path / "plugin", {**VALID, field_name: ["hooks/sample.py", entry]})
        assert manifest_error(path) == f"{path}: field '{field_name}.1': {entry!r} {problem}"


def test_a_migrations_folder_outside_the_plugin_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "env.py").write_text("")  # a valid alembic folder, but not the plugin's
    path = write_manifest(tmp_path / "plugin", {**VALID, "migrations": "../migrations"})
    assert manifest_error(path) == f"{path}: field 'migrations': '../migrations' is outside the plugin folder"


def test_two_plugins_with_one_name_are_refused(tmp_path: Path) -> None:
    first = write_manifest(tmp_path / "a_plugin", VALID).resolve()
    second = write_manifest(tmp_path / "b_plugin", {**VALID, "version": "2.0.0"})
    with pytest.raises(ManifestError) as caught:
        discover_manifests([tmp_path])
    message = str(caught.value)
    assert message.startswith(f"{second}: field 'name': 'sample-plugin' is already used by {first}"), message


def test_one_manifest_found_through_two_paths_is_not_a_duplicate(tmp_path: Path) -> None:
    write_manifest(tmp_path / "a_plugin", VALID)
    found = discover_manifests([tmp_path, tmp_path / "a_plugin", tmp_path / "missing-folder"])
    assert [manifest.name for manifest in found] == ["sample-plugin"]


def test_a_bad_manifest_stops_discovery(tmp_path: Path) -> None:
    write_manifest(tmp_path / "good", VALID)
    bad = write_manifest(tmp_path / "bad", {**VALID, "name": "other", "version": "one"})
    with pytest.raises(ManifestError, match=f"^{bad.resolve()}: field 'version'"):
        discover_manifests([tmp_path])


def test_discovery_finds_the_repository_plugin_and_the_test_plugin() -> None:
    found = {manifest.name: manifest for manifest in discover_manifests([ROOT, TEST_PLUGINS])}
    assert set(found) == {"websocket-realtime-engine", "order-emitter"}
    engine = found["websocket-realtime-engine"]
    assert engine.path == (ROOT / "plugin.json").resolve()
    assert engine.version == json.loads((ROOT / "plugin.json").read_text())["version"]
    assert engine.hooks == ("hooks/lifecycle.py", "hooks/commerce.py", "hooks/commands.py", "hooks/demo.py")
    assert engine.hookspecs == ("hooks/hookspecs.py",)
    assert engine.migrations == (ROOT / "migrations").resolve()
    assert found["order-emitter"].path == (TEST_PLUGINS / "order_emitter" / "plugin.json").resolve()
