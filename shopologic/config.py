"""Host settings: the platform database and where plugins are found.

Read once from the environment into a frozen dataclass and passed down.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SESSION_TTL = 7 * 24 * 3600  # seconds a shop session lasts unless SHOPOLOGIC_SESSION_TTL says otherwise


class ConfigError(ValueError):
    """A setting has a value the platform cannot use."""


def normalize_database_url(url: str) -> str:
    """Turn a usual database URL into one with the project's async driver.

    ``sqlite:///path`` becomes ``sqlite+aiosqlite:///path`` and ``postgresql://…`` (or
    ``postgres://…``) becomes ``postgresql+asyncpg://…``; URLs that already name a driver pass.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"SHOPOLOGIC_DATABASE_URL is not a URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}" if "+" not in scheme else url
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}" if "+" not in scheme else url
    raise ConfigError(f"unsupported database in SHOPOLOGIC_DATABASE_URL: {base!r} (use sqlite or postgresql)")


def redact_url(url: str) -> str:
    """A URL without its password (``redis://:secret@host`` → ``redis://:***@host``)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def url_password(url: str) -> str:
    """The password of a URL (``redis://user:secret@host`` → ``secret``), or ``""``."""
    credentials, at, _ = url.partition("://")[2].rpartition("@")
    return credentials.partition(":")[2] if at else ""


def default_database_url(var_dir: Path) -> str:
    """The embedded default: an SQLite file in the var folder."""
    return f"sqlite:///{var_dir / 'shopologic.db'}"


@dataclass(frozen=True)
class HostSettings:
    """Settings of the host platform itself."""

    var_dir: Path
    database_url: str
    plugin_paths: tuple[Path, ...]
    secret_key: str
    session_ttl: int = DEFAULT_SESSION_TTL  # seconds from sign-in until a shop session expires

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HostSettings:
        """Read the host's settings from the environment (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        var_dir = Path(env.get("SHOPOLOGIC_VAR_DIR") or PROJECT_ROOT / "var")
        url = env.get("SHOPOLOGIC_DATABASE_URL") or default_database_url(var_dir)
        extra = [Path(p) for p in env.get("SHOPOLOGIC_PLUGIN_PATH", "").split(os.pathsep) if p]
        return cls(
            var_dir=var_dir,
            database_url=normalize_database_url(url),
            plugin_paths=(PROJECT_ROOT, PROJECT_ROOT / "plugins", *extra),
            secret_key=env.get("SHOPOLOGIC_SECRET_KEY") or _stored_secret(var_dir / "secret_key"),
            session_ttl=_session_ttl(env.get("SHOPOLOGIC_SESSION_TTL") or ""),
        )


def _session_ttl(text: str) -> int:
    """``SHOPOLOGIC_SESSION_TTL``: whole seconds, at least 1; unset or empty is the default (7 days)."""
    if not text.strip():
        return DEFAULT_SESSION_TTL
    try:
        seconds = int(text)
    except ValueError:
        raise ConfigError(f"SHOPOLOGIC_SESSION_TTL must be a whole number of seconds, not {text!r}") from None
    if seconds < 1:
        raise ConfigError(f"SHOPOLOGIC_SESSION_TTL must be at least 1 second, not {seconds}")
    return seconds


def _stored_secret(path: Path) -> str:
    """The platform's session-signing secret: generated once, kept in a file only its owner reads."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
        return secret


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (0600), whatever the file was before.

    For files that may hold a secret (``realtime.toml`` may hold a Redis password). Written beside
    it and renamed over it, so no reader sees half a file; a folder created for it is 0700.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a partial file left by a crash keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
