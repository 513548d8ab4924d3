"""ingest_files.content_sha256: a file's content, whatever its compression or encoding

Revision ID: 0005_ingest_content_hash
Revises: 0004_statements
Create Date: 2026-11-26 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ingest_content_hash"
down_revision: str | None = "0004_statements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingest_files", sa.Column("content_sha256", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_ingest_files_org_content", "ingest_files", ["org_id", "content_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_files_org_content", table_name="ingest_files")
    with op.batch_alter_table("ingest_files") as batch:
        batch.drop_column("content_sha256")
