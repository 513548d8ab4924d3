"""api_keys.portal_epoch: signing out of the portal ends the session on the server

A portal session cookie is signed over its key's epoch; sign-out moves the epoch on, so a
copy of the cookie replayed afterwards is refused (before, it worked until it expired).

Revision ID: 0008_portal_sign_out
Revises: 0007_wider_rates
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_portal_sign_out"
down_revision: str | None = "0007_wider_rates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("portal_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("portal_epoch")
