"""The default app's credentials: created at activation, overridden by the environment.

Credentials given in the environment (``REALTIME_APP_ID``, ``REALTIME_APP_KEY``,
``REALTIME_APP_SECRET``, ``REALTIME_API_KEY``, ``REALTIME_ADMIN_TOKEN``) win at every start and are
stored, so every tool reading the database agrees with the running engine. The API key, app secret
and admin token must be too long to guess (:func:`check_secret_lengths`, at every start); generated
ones are 48, 40 and 48 characters. An app stored before the admin token existed gets one generated.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from websocket_realtime_engine import errors
from websocket_realtime_engine.config import CREDENTIAL_FIELDS, Settings
from websocket_realtime_engine.db.models import App

MIN_SECRET_LENGTH = 20  # Pusher's own secrets are 20 characters: shorter ones are refused
RECOMMENDED_SECRET_LENGTH = 32  # shorter ones are accepted with a warning
# the credentials that must stay secret (the app key and id are public: pages hold them)
SECRETS = {
    "api_key": ("REALTIME_API_KEY", "API key"),
    "app_secret": ("REALTIME_APP_SECRET", "app secret"),
    "admin_token": ("REALTIME_ADMIN_TOKEN", "admin token"),
}


def generate() -> dict[str, str]:
    """Fresh credentials: a 6-digit app id, a 20-hex key, a 40-hex secret, a 48-hex API key and admin token."""
    return {
        "app_id": str(secrets.randbelow(900_000) + 100_000),
        "app_key": secrets.token_hex(10),
        "app_secret": secrets.token_hex(20),
        "api_key": secrets.token_hex(24),
        "admin_token": secrets.token_hex(24),
    }


async def has_app_table(engine: AsyncEngine) -> bool:
    """Whether the migrations have made the apps table (not before the first, nor after ``down base``)."""
    async with engine.connect() as conn:
        return bool(await conn.run_sync(lambda sync: inspect(sync).has_table(App.__tablename__)))


async def stored_credentials(engine: AsyncEngine) -> dict[str, str] | None:
    """The default (first enabled) app's credentials, or ``None`` when there is none."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(App).where(App.enabled.is_(True)).order_by(App.created_at).limit(1))).first()
    if row is None:
        return None
    stored = {"app_id": row.id, "app_key": row.key, "app_secret": row.secret, "api_key": row.api_key}
    return {**stored, "admin_token": row.admin_token or ""}  # none in an app stored before revision 0003


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
                admin_token=credentials["admin_token"],
                enabled=True,
            )
        )


async def ensure_default_app(engine: AsyncEngine, settings: Settings) -> tuple[dict[str, str], bool]:
    """Create the default app unless one exists; the environment's values win. ``(creds, created)``.

    A credential the stored app lacks (the admin token of an app stored before it existed) is generated."""
    stored = await stored_credentials(engine)
    given = {name: getattr(settings, name) for name in CREDENTIAL_FIELDS}
    fresh = generate()
    credentials = {name: given[name] or (stored or {}).get(name) or fresh[name] for name in CREDENTIAL_FIELDS}
    if credentials != stored:
        await store_credentials(engine, credentials)
    return credentials, stored is None


async def resolve_credentials(engine: AsyncEngine, settings: Settings) -> Settings:
    """Settings completed with the stored credentials, after storing any the environment gives."""
    credentials, _ = await ensure_default_app(engine, settings)
    return settings.with_credentials(**credentials)  # the environment's values are already in them


def check_secret_lengths(settings: Settings) -> list[str]:
    """Refuse an API key, app secret or admin token shorter than ``MIN_SECRET_LENGTH``; warn under
    ``RECOMMENDED_SECRET_LENGTH``. No admin token at all (a node without a database that was given none)
    only means that nobody can sign in as an admin.

    :returns: the warnings to log (with ``REALTIME_ALLOW_SHORT_SECRETS``, one for each short secret
        let through).
    :raises errors.StartupError: a secret is too short and short ones are not allowed.
    """
    warnings = []
    for name, (variable, what) in SECRETS.items():
        length = len(getattr(settings, name))
        if name == "admin_token" and not length:
            continue
        if length >= RECOMMENDED_SECRET_LENGTH:
            continue
        if length >= MIN_SECRET_LENGTH:
            warnings.append(f"the {what} is {length} characters: {RECOMMENDED_SECRET_LENGTH} or more are recommended")
        elif settings.allow_short_secrets:
            warnings.append(
                f"REALTIME_ALLOW_SHORT_SECRETS is on: the {what} is only {length} characters (at least"
                f" {MIN_SECRET_LENGTH} are needed otherwise); for tests only, never where others can reach the node"
            )
        else:
            raise errors.StartupError(
                f"the {what} ({variable}, or the stored app's) is {length} characters: at least {MIN_SECRET_LENGTH}"
                f" are needed, {RECOMMENDED_SECRET_LENGTH} or more recommended (generate one with"
                " `python -c 'import secrets; print(secrets.token_hex(24))'`); REALTIME_ALLOW_SHORT_SECRETS=true"
                " allows short ones, for tests only"
            )
    return warnings
