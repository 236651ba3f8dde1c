"""Engine settings: one frozen dataclass, read once and passed down.

Every field ``name`` has the environment name ``REALTIME_<NAME>``. The environment wins over the
config file (TOML, ``REALTIME_CONFIG_FILE``, default ``var/realtime.toml``), which wins over the
defaults below. The README's configuration table documents each one.
"""

from __future__ import annotations

import os
import secrets
import socket
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from websocket_realtime_engine.origins import parse_patterns

CREDENTIAL_FIELDS = ("app_id", "app_key", "app_secret", "api_key", "admin_token")
SECRET_FIELDS = frozenset({"app_secret", "api_key", "redis_url", "metrics_token", "admin_token"})


class SettingsError(ValueError):
    """A setting has a value the engine cannot use; the message names the setting."""


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Settings:
    """Every engine setting with its safe default."""

    host: str = "127.0.0.1"
    port: int = 8080
    # TLS: PEM files of the certificate (chain) and its key; both set: https:// and wss:// on ``port``
    tls_cert: str = ""
    tls_key: str = ""
    node_id: str = field(default_factory=default_node_id)
    redis_url: str = ""  # set: the Redis backends (a cluster); unset: the embedded ones (one node)
    redis_prefix: str = "shopologic:"  # every Redis key and pub/sub channel starts with it
    redis_pool_size: int = 50  # connections of this node's one pool, shared by every Redis backend
    redis_timeout: float = 2.0  # seconds a Redis command may take before it fails (publish: 503)
    log_level: str = "info"
    log_format: str = "json"
    # credentials (the environment wins; otherwise the default app stored at activation)
    app_id: str = ""
    app_key: str = ""
    app_secret: str = ""
    api_key: str = ""
    metrics_token: str = ""  # set: GET /metrics needs ``Authorization: Bearer <it>``; empty: readable by anyone
    # connections
    heartbeat: float = 25.0
    close_timeout: float = 3.0
    max_connections: int = 10_000
    stream_call_timeout: float = 5.0  # seconds a node waits for the node holding an SSE stream to answer a control call
    # connection throttling (web/throttle.py), counted from the TCP accept
    max_http_connections: int = 1_000  # per node: connections that are not (yet) WebSockets
    max_connections_per_address: int = 100  # open at once per client address (loopback excepted)
    connection_rate_per_address: float = 10.0  # new connections a second per address, bursts of the above
    handshake_timeout: float = 5.0  # seconds to complete a request (head and body), from its first byte or the accept
    keepalive_timeout: float = 75.0  # seconds a kept-alive HTTP connection may idle after a response (nginx's default)
    throttle_loopback: bool = False  # limit loopback addresses per address too (tests)
    throttle_exempt: tuple[str, ...] = ()  # addresses never limited per address (the shop's servers)
    max_frame_bytes: int = 64 * 1024
    max_channels_per_connection: int = 100
    max_presence_members: int = 100
    max_user_info_bytes: int = 2048
    max_user_id_length: int = 128
    max_event_name_length: int = 200
    max_json_depth: int = 32  # nesting of any JSON a client or caller sends: frames, channel/user data, REST bodies
    write_buffer_limit: int = 4 * 1024 * 1024
    client_messages_per_second: float = 10.0
    client_frames_per_second: float = 100.0
    client_flood_close_after: float = 10.0  # seconds over the frame rate, without a break of 1 s, before a close
    client_presence_per_minute: float = 60.0  # presence joins and member-list reads per connection (bursts of 10)
    compression: bool = False
    gc_tuning: bool = True  # applied by the standalone node (`websocket start`) only
    # history and recovery: per channel, the last publications kept for reconnecting clients
    history_size: int = 100
    history_ttl: float = 300.0
    # node registry: how often this node says it is alive; it is thought dead after 3 missed beats
    node_heartbeat: float = 2.0
    # channels
    presence_patterns: tuple[str, ...] = ("users:*",)
    private_patterns: tuple[str, ...] = ()
    # signed in, a user joins these as itself without auth; other users:* channels need the host's
    # authorize_channel (through POST /api/v1/authenticate)
    signin_presence_patterns: tuple[str, ...] = ("users:online",)
    client_message_types: tuple[str, ...] = ("private", "presence")
    client_message_patterns: tuple[str, ...] = ()
    # REST
    rest_max_body_bytes: int = 1024 * 1024
    max_broadcast_channels: int = 100
    rest_requests_per_second: float = 10_000.0  # per API key and node (bursts of twice that); over it: 429
    idempotency_ttl: float = 300.0  # seconds a broadcast's idempotency_key is remembered (cluster-wide on Redis)
    engine_url: str = ""
    trusted_proxies: tuple[str, ...] = ()
    # browsers (origins.py patterns): pages that may open /socket; pages that may call the
    # authenticate endpoints from script (CORS; never the API-key routes)
    allowed_origins: tuple[str, ...] = ("*",)
    allow_missing_origin: bool = True  # no Origin header: not a browser (a server, an app, a script)
    cors_origins: tuple[str, ...] = ()
    # an API key or app secret under 20 characters stops the node; this lets it start (tests), loudly
    allow_short_secrets: bool = False
    # admin access (web/admin.py): the token (a credential: generated at activation unless given), how long
    # a login lasts; the engine's own live channels (feeds.py): stats every interval, log events a second
    admin_token: str = ""
    admin_session_ttl: float = 12 * 3600.0
    admin_stats_interval: float = 1.0
    admin_log_rate: float = 100.0
    # durable record (write-behind)
    db_batch_size: int = 500
    db_flush_interval: float = 0.5
    db_backlog_limit: int = 100_000
    db_retry_max_delay: float = 5.0
    db_backlog_max_bytes: int = 64 * 1024 * 1024
    # retention (db/retention.py): one node at a time prunes the rows that ended more than `retention`
    # seconds ago (0: keeps everything), every `retention_interval` s, `retention_batch` rows a statement
    retention: float = 7 * 24 * 3600.0
    retention_interval: float = 3600.0
    retention_batch: int = 1_000
    store_private_payloads: bool = True  # false: private and presence messages are recorded without payload
    # the outbox of shop events (one draining node at a time)
    outbox_poll_interval: float = 1.0  # seconds between looks for rows (SQLite; PostgreSQL is woken by NOTIFY)
    outbox_lease_ttl: float = 10.0  # seconds a silent drainer keeps the lease before another node takes over
    outbox_batch_size: int = 100  # rows read, published and marked at once
    demo_interval: float = 3.0  # seconds between two events of `serve --demo`'s pretend shop
    # hooks out of the engine
    hook_queue_limit: int = 1_000
    hook_queue_max_bytes: int = 64 * 1024 * 1024

    @property
    def tls(self) -> bool:
        """Whether the node serves TLS (``tls_cert`` and ``tls_key`` set; the check makes it both or neither)."""
        return bool(self.tls_cert)

    @property
    def public_url(self) -> str:
        """Where this node's HTTP API answers (``engine_url`` overrides)."""
        return self.engine_url or f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets masked, for logs and status pages."""
        return {
            f.name: ("***" if f.name in SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }

    def with_credentials(self, **credentials: str) -> Settings:
        """A copy where empty credentials are filled from ``credentials`` (the stored app)."""
        fill: dict[str, Any] = {name: value for name, value in credentials.items() if value and not getattr(self, name)}
        return replace(self, **fill)


def _convert(name: str, kind: Any, raw: Any) -> Any:
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError("expected true or false")
            return text in ("1", "true", "yes", "on")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if origin is tuple:
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"REALTIME_{name.upper()}: {raw!r} is not a valid value ({exc})") from None


def config_file_path(environ: Mapping[str, str] | None = None, default: Path | None = None) -> Path:
    """The TOML file settings are read from: ``REALTIME_CONFIG_FILE``, else ``default``."""
    env = os.environ if environ is None else environ
    return Path(env.get("REALTIME_CONFIG_FILE") or default or Path("var/realtime.toml"))


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Defaults, then the config file, then the environment, then explicit ``overrides`` (CLI flags)."""
    env = os.environ if environ is None else environ
    path = config_file_path(env, config_file)
    from_file: dict[str, Any] = {}
    if path.is_file():
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    hints = typing.get_type_hints(Settings)
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(from_file) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    for name in known:
        raw = overrides.get(name)
        if raw is None:
            raw = env.get(f"REALTIME_{name.upper()}") or None  # an empty variable means "not set"
        if raw is None:
            raw = from_file.get(name)
        if raw is None or raw == "":
            continue
        values[name] = _convert(name, hints[name], raw)
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if not 0 < settings.port < 65536:
        raise SettingsError(f"REALTIME_PORT: {settings.port} is not a TCP port")
    positive = (
        "heartbeat",
        "max_connections",
        "max_http_connections",
        "max_connections_per_address",
        "connection_rate_per_address",
        "handshake_timeout",
        "keepalive_timeout",
        "max_frame_bytes",
        "max_channels_per_connection",
        "max_presence_members",
        "write_buffer_limit",
        "rest_max_body_bytes",
        "db_batch_size",
        "close_timeout",
        "stream_call_timeout",
        "db_flush_interval",
        "db_retry_max_delay",
        "db_backlog_limit",
        "db_backlog_max_bytes",
        "hook_queue_limit",
        "hook_queue_max_bytes",
        "outbox_poll_interval",
        "outbox_lease_ttl",
        "outbox_batch_size",
        "demo_interval",
        "client_messages_per_second",
        "client_frames_per_second",
        "client_flood_close_after",
        "client_presence_per_minute",
        "max_user_info_bytes",
        "max_user_id_length",
        "max_event_name_length",
        "max_broadcast_channels",
        "max_json_depth",
        "rest_requests_per_second",
        "idempotency_ttl",
        "history_ttl",
        "node_heartbeat",
        "redis_pool_size",
        "redis_timeout",
        "retention_interval",
        "retention_batch",
        "admin_session_ttl",
        "admin_stats_interval",
        "admin_log_rate",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"REALTIME_{name.upper()}: must be greater than 0")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError(
            "REALTIME_TLS_CERT and REALTIME_TLS_KEY (--tls-cert and --tls-key) go together: give the certificate and"
            " its key, or neither"
        )
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REALTIME_REDIS_URL: must start with redis://, rediss:// or unix://")
    if len(settings.redis_prefix) > 64:
        raise SettingsError("REALTIME_REDIS_PREFIX: at most 64 characters")
    if settings.history_size < 0:
        raise SettingsError("REALTIME_HISTORY_SIZE: must be 0 (no history) or more")
    if settings.retention < 0:
        raise SettingsError("REALTIME_RETENTION: must be 0 (keep every row) or more seconds")
    if not 0 < len(settings.node_id) <= 128:
        raise SettingsError("REALTIME_NODE_ID: must be 1 to 128 characters")
    if settings.app_id and not settings.app_id.isdigit():
        raise SettingsError("REALTIME_APP_ID: must be digits")
    if settings.max_json_depth > 250:
        raise SettingsError("REALTIME_MAX_JSON_DEPTH: at most 250 (the deepest JSON the engine can send on is 254)")
    unknown_types = set(settings.client_message_types) - {"public", "private", "presence"}
    if unknown_types:
        raise SettingsError(f"REALTIME_CLIENT_MESSAGE_TYPES: unknown channel type(s) {sorted(unknown_types)}")
    for name in ("allowed_origins", "cors_origins"):
        try:
            parse_patterns(getattr(settings, name))
        except ValueError as exc:
            raise SettingsError(f"REALTIME_{name.upper()}: {exc}") from None
