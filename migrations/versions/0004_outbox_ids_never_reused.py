"""outbox ids never reused on SQLite

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 19:35:00

SQLite gives the highest id again once its row is deleted (``websocket erase-user`` deletes a
customer's outbox rows, often the newest): an event could then be taken for the erased one. With
``AUTOINCREMENT`` it never does. SQLite cannot add it to a table, so the table is rebuilt (rows and
indexes kept); PostgreSQL's sequence never gives an id twice already, and nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "realtime_outbox", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
