"""ingest_files (org_id, content_sha256) unique: one ingested file per content

Two ingestions of the same report in different wrappings running at once (mapped Airflow
tasks on PostgreSQL) could both pass the content check, as neither sees the other's
uncommitted row. A unique index makes the second wait and fail, and it is then recorded as a
duplicate. Quarantined files have no content hash (NULLs never collide).

Revision ID: 0006_ingest_content_unique
Revises: 0005_ingest_content_hash
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_ingest_content_unique"
down_revision: str | None = "0005_ingest_content_hash"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_ingest_files_org_content", table_name="ingest_files")
    op.create_index(
        "ix_ingest_files_org_content", "ingest_files", ["org_id", "content_sha256"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_files_org_content", table_name="ingest_files")
    op.create_index(
        "ix_ingest_files_org_content", "ingest_files", ["org_id", "content_sha256"], unique=False
    )
