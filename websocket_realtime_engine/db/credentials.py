"""The default app's credentials: created at activation, overridden by the environment.

Credentials given in the environment (``REALTIME_APP_ID``, ``REALTIME_APP_KEY``,
``REALTIME_APP_SECRET``, ``REALTIME_API_KEY``) win at every start and are stored, so every tool
reading the database agrees with the running engine.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.db.models import App


def generate() -> dict[str, str]:
    """Fresh credentials: a 6-digit app id, a 20-hex key, a 40-hex secret, a 48-hex API key."""
    return {
        "app_id": str(secrets.randbelow(900_000) + 100_000),
        "app_key": secrets.token_hex(10),
        "app_secret": secrets.token_hex(20),
        "api_key": secrets.token_hex(24),
    }


async def stored_credentials(engine: AsyncEngine) -> dict[str, str] | None:
    """The default (first enabled) app's credentials, or ``None`` when there is none."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(App).where(App.enabled.is_(True)).order_by(App.created_at).limit(1))).first()
    if row is None:
        return None
    return {"app_id": row.id, "app_key": row.key, "app_secret": row.secret, "api_key": row.api_key}


async def store_credentials(engine: AsyncEngine, credentials: dict[str, str]) -> None:
    """Make ``credentials`` the default app (replacing the stored one)."""
    async with engine.begin() as conn:
        await conn.execute(delete(App))
        await conn.execute(
            insert(App).values(
                id=credentials["app_id"],
                key=credentials["app_key"],
                secret=credentials["app_secret"],
                api_key=credentials["api_key"],
                enabled=True,
            )
        )


async def ensure_default_app(engine: AsyncEngine, settings: Settings) -> tuple[dict[str, str], bool]:
    """Create the default app unless one exists; the environment's values win. ``(creds, created)``."""
    stored = await stored_credentials(engine)
    given = {name: getattr(settings, name) for name in ("app_id", "app_key", "app_secret", "api_key")}
    base = stored or generate()
    credentials = {name: given[name] or base[name] for name in base}
    if credentials != stored:
        await store_credentials(engine, credentials)
    return credentials, stored is None


async def resolve_credentials(engine: AsyncEngine, settings: Settings) -> Settings:
    """Settings completed with the stored credentials, after storing any the environment gives."""
    credentials, _ = await ensure_default_app(engine, settings)
    return settings.with_credentials(**credentials)  # the environment's values are already in them
