"""What the host and its plugins exchange: the platform as plugins see it, migration sources, errors.

A leaf of the host: every other host module may import it, and it imports none of them but the
settings, so the platform, its defaults and its hookspecs share these names without an import cycle.
Plugins' hooks import it too; the host never imports a plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from shopologic.config import HostSettings


class PluginError(RuntimeError):
    """A plugin cannot be found, loaded, activated or deactivated, or cannot do what a hook call asked.

    The message is the one line the user sees.
    """


class CommandError(Exception):
    """A command cannot do what was asked; the message is the one line the user sees.

    Plugins' commands (``register_commands``) raise it too, so the host's CLI needs no plugin's errors.
    """


class SessionEndedError(Exception):
    """A request's shop session is validly signed but no longer valid: its user must sign in again.

    Raised by ``identify_user`` (the host's default, or a plugin's) instead of answering ``None``, so
    the caller can tell the user why; the message is safe to show. Plugins that serve requests (the
    realtime engine) translate it into their own answer (a 401 ``session_expired`` or ``session_revoked``).
    """


class SessionExpiredError(SessionEndedError):
    """The session is past its expiry (``exp``, ``SHOPOLOGIC_SESSION_TTL`` after sign-in)."""


class SessionRevokedError(SessionEndedError):
    """The session was signed before its user's sessions were revoked (``platform.revoke_sessions``)."""


@dataclass(frozen=True)
class MigrationSource:
    """Where a plugin's alembic migrations live and which tables they own."""

    plugin: str
    script_location: Path
    version_table: str
    table_prefix: str


@runtime_checkable
class PluginHost(Protocol):
    """The host platform as plugins see it (:class:`shopologic.platform.Platform` implements it)."""

    @property
    def settings(self) -> HostSettings:
        """The host's settings: database URL, var folder, plugin paths, secret key."""

    @property
    def engine(self) -> AsyncEngine:
        """The platform database."""

    @property
    def hook(self) -> Any:
        """The hook relay of the active plugins: ``platform.hook.order_created(order=…)``."""

    @property
    def active(self) -> set[str]:
        """The names of the active plugins."""

    @property
    def overrides(self) -> dict[str, Any]:
        """Command-line options for plugins to honour (``host``, ``port``, ``node_id``, ``tls_cert``,
        ``tls_key``; ``demo`` when ``serve --demo`` runs), when given."""

    def transaction(self) -> Any:
        """``async with platform.transaction() as tx:``: one transaction of the platform database
        for the order (``tx.connection``) and the events emitted inside it (:mod:`shopologic.transactions`)."""

    async def emit(self, event: str, **payload: Any) -> list[Any]:
        """Emit a shop event (``order.created``) through the hooks and await every result."""

    async def revoke_sessions(self, user_id: str) -> list[Any]:
        """End every shop session of a user (their session version goes up), then call the
        ``sessions_revoked`` hook in the same transaction and await every result."""

    async def activate(self, name: str) -> bool:
        """Activate a plugin (registers its hooks, runs its migrations); ``False`` if it was active."""

    def migration_sources(self) -> list[MigrationSource]:
        """The migration sources of every active plugin."""

    async def migrate_to_head(self, announce: Callable[[str], None]) -> None:
        """Upgrade every active plugin whose database is behind its migrations, announcing each."""

    def build_app(self, only: str | None = None) -> web.Application:
        """The platform's aiohttp application, or one plugin's alone (``only``)."""


PLATFORM_KEY = web.AppKey[PluginHost]("shopologic.platform")
