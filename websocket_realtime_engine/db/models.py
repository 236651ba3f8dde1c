"""SQLAlchemy 2 models of the realtime engine. Every table starts with ``realtime_``.

Live state (subscriptions, presence) is in memory or Redis; these tables keep the durable record,
written behind by :mod:`websocket_realtime_engine.db.recorder`, and the app credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TABLE_PREFIX = "realtime_"
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with its own metadata: never shared with the host's tables."""

    metadata = MetaData(naming_convention=NAMING)


class App(Base):
    """An application's credentials and limits (the Pusher notion of an app)."""

    __tablename__ = "realtime_apps"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)  # digits
    key: Mapped[str] = mapped_column(String(64), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    api_key: Mapped[str] = mapped_column(String(128))
    # the admin pages' token (web/admin.py); null in apps stored before it existed: generated at the next start
    admin_token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    max_connections: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_client_messages_per_second: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServerNode(Base):
    """A node that has run: when it started, its last heartbeat, when it stopped."""

    __tablename__ = "realtime_server_nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Connection(Base):
    """The audit record of one client connection."""

    __tablename__ = "realtime_connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(128), index=True)
    remote: Mapped[str] = mapped_column(String(64), default="")
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class Channel(Base):
    """A channel that has carried messages: first and last time."""

    __tablename__ = "realtime_channels"

    name: Mapped[str] = mapped_column(String(164), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Message(Base):
    """The log of published messages (the frame as it was delivered; ``payload`` is ``None`` where
    ``REALTIME_STORE_PRIVATE_PAYLOADS`` is off and the channel is private or presence)."""

    __tablename__ = "realtime_messages"
    __table_args__ = (
        Index("ix_realtime_messages_channel_created", "channel", "created_at"),
        Index("ix_realtime_messages_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(164))
    event: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    node_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Presence(Base):
    """The record of presence memberships: who joined which channel, from which connection, until when."""

    __tablename__ = "realtime_presence"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(164), index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    connection_id: Mapped[str] = mapped_column(String(40))
    user_info: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class OutboxEntry(Base):
    """One shop event (or control action) waiting to be published: written by the hook in the
    caller's transaction, published by the one draining node in ``id`` order, then marked
    (``published_at``). ``body`` is JSON: for ``broadcasts`` a list of ``[channels, event, data]``,
    for ``disconnect_user`` ``{"user_id": ...}``. ``customer_id`` names whose data it holds
    (``websocket erase-user``)."""

    __tablename__ = "realtime_outbox"
    # AUTOINCREMENT on SQLite: an id is never given twice, even after the newest row was deleted (erase-user)
    __table_args__ = (Index("ix_realtime_outbox_pending", "published_at", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Lease(Base):
    """A job that one node at a time does (draining the outbox, pruning old rows): who holds it and
    until when (seconds since the epoch, by the holder's clock)."""

    __tablename__ = "realtime_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(160))
    expires_at: Mapped[float] = mapped_column(Float)
