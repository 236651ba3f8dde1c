"""outbox, leases, retention indexes

The outbox of shop events (written in the caller's transaction, drained by one node), the leases of
the jobs one node at a time does, the indexes retention pruning and ``erase-user`` read by, and
message payloads that may be left out (``REALTIME_STORE_PRIVATE_PAYLOADS=false``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 17:30:18.466827
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realtime_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=160), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_realtime_leases")),
    )
    op.create_table(
        "realtime_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_outbox")),
    )
    with op.batch_alter_table("realtime_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_realtime_outbox_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_realtime_outbox_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_realtime_outbox_pending", ["published_at", "id"], unique=False)

    with op.batch_alter_table("realtime_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_realtime_connections_closed_at"), ["closed_at"], unique=False)

    with op.batch_alter_table("realtime_messages", schema=None) as batch_op:
        batch_op.alter_column("payload", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.create_index("ix_realtime_messages_created_at", ["created_at"], unique=False)

    with op.batch_alter_table("realtime_presence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_realtime_presence_left_at"), ["left_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_realtime_presence_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    # payloads left out become empty ones: the old schema requires one
    op.get_bind().execute(
        sa.text("UPDATE realtime_messages SET payload = :empty WHERE payload IS NULL"), {"empty": b""}
    )
    with op.batch_alter_table("realtime_presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_realtime_presence_user_id"))
        batch_op.drop_index(batch_op.f("ix_realtime_presence_left_at"))

    with op.batch_alter_table("realtime_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_realtime_messages_created_at")
        batch_op.alter_column("payload", existing_type=sa.LargeBinary(), nullable=False)

    with op.batch_alter_table("realtime_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_realtime_connections_closed_at"))

    with op.batch_alter_table("realtime_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_realtime_outbox_pending")
        batch_op.drop_index(batch_op.f("ix_realtime_outbox_customer_id"))
        batch_op.drop_index(batch_op.f("ix_realtime_outbox_created_at"))

    op.drop_table("realtime_outbox")
    op.drop_table("realtime_leases")
