"""org_formats: an organisation's own format specs, versioned; ingest_files.format_version

Revision ID: 0011_org_formats
Revises: 0010_contract_terms_effective
Create Date: 2026-12-08 03:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_org_formats"
down_revision: str | None = "0010_contract_terms_effective"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "org_formats",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "org_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec_yaml", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("org_id", "name", "version"),
    )
    op.create_index("ix_org_formats_org_id", "org_formats", ["org_id"])
    with op.batch_alter_table("ingest_files") as batch:
        batch.add_column(sa.Column("format_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_files") as batch:
        batch.drop_column("format_version")
    op.drop_index("ix_org_formats_org_id", table_name="org_formats")
    op.drop_table("org_formats")
