"""admin token

The app's ``admin_token`` (``REALTIME_ADMIN_TOKEN``): the admin pages' login and Bearer token. Null
in an app stored before this revision: the engine generates it at its next start or activation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 18:15:39.014503
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("realtime_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("admin_token", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("realtime_apps", schema=None) as batch_op:
        batch_op.drop_column("admin_token")
