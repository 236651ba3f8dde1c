"""create realtime tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 06:52:59.136968
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realtime_apps",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("api_key", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("max_connections", sa.Integer(), nullable=True),
        sa.Column("max_client_messages_per_second", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_apps")),
        sa.UniqueConstraint("key", name=op.f("uq_realtime_apps_key")),
    )
    op.create_table(
        "realtime_channels",
        sa.Column("name", sa.String(length=164), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_realtime_channels")),
    )
    op.create_table(
        "realtime_connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_connections")),
    )
    with op.batch_alter_table("realtime_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_realtime_connections_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_realtime_connections_user_id"), ["user_id"], unique=False)

    op.create_table(
        "realtime_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=164), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_messages")),
    )
    with op.batch_alter_table("realtime_messages", schema=None) as batch_op:
        batch_op.create_index("ix_realtime_messages_channel_created", ["channel", "created_at"], unique=False)

    op.create_table(
        "realtime_presence",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=164), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("user_info", sa.JSON(), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_presence")),
    )
    with op.batch_alter_table("realtime_presence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_realtime_presence_channel"), ["channel"], unique=False)

    op.create_table(
        "realtime_server_nodes",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_server_nodes")),
    )


def downgrade() -> None:
    op.drop_table("realtime_server_nodes")
    with op.batch_alter_table("realtime_presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_realtime_presence_channel"))

    op.drop_table("realtime_presence")
    with op.batch_alter_table("realtime_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_realtime_messages_channel_created")

    op.drop_table("realtime_messages")
    with op.batch_alter_table("realtime_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_realtime_connections_user_id"))
        batch_op.drop_index(batch_op.f("ix_realtime_connections_node_id"))

    op.drop_table("realtime_connections")
    op.drop_table("realtime_channels")
    op.drop_table("realtime_apps")
