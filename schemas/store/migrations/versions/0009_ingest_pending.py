"""ingest_files: a ``pending`` status and its owner (host, pid, the pid's start time)

An ingestion commits its ledger row ``pending`` first (short transaction, giving the file id),
reads the file with no transaction open, and flips the row to ``ingested`` as its one commit
point. Only ``ingested`` rows' lake parts are inputs; recovery removes a pending row (and its
files) once its owner process is gone.

Revision ID: 0009_ingest_pending
Revises: 0008_portal_sign_out
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_ingest_pending"
down_revision: str | None = "0008_portal_sign_out"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite: the table is rebuilt; AUTOINCREMENT kept, so that a file id is never given again
    # (a lake folder left by a crash can never be taken for a later file's)
    with op.batch_alter_table("ingest_files", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("owner_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_start", sa.String(length=64), nullable=True))
        batch.drop_constraint(op.f("ck_ingest_files_ingeststatus"), type_="check")
        batch.create_check_constraint(
            "ingeststatus", sa.column("status").in_(["pending", "ingested", "quarantined"])
        )


def downgrade() -> None:
    op.execute("DELETE FROM ingest_files WHERE status = 'pending'")
    with op.batch_alter_table("ingest_files", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(op.f("ck_ingest_files_ingeststatus"), type_="check")
        batch.create_check_constraint(
            "ingeststatus", sa.column("status").in_(["ingested", "quarantined"])
        )
        batch.drop_column("owner_start")
        batch.drop_column("owner_pid")
        batch.drop_column("owner_host")
