"""statement targets and publications, invoice parties

Revision ID: 0004_statements
Revises: 0003_royalty_runs
Create Date: 2026-11-26 01:12:46.342379
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schemas.store.types import Ratio

revision: str = "0004_statements"
down_revision: str | None = "0003_royalty_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "statement_targets",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret_env", sa.String(length=100), nullable=True),
        sa.Column("payee_id", sa.Integer(), nullable=True),
        sa.Column("formats", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_statement_targets_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"],
            ["payees.id"],
            name=op.f("fk_statement_targets_payee_id_payees"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_targets")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_statement_targets_org_id_name")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("statement_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_statement_targets_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_statement_targets_payee_id"), ["payee_id"], unique=False
        )

    op.create_table(
        "statement_publications",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "publishing",
                "published",
                "failed",
                name="publicationstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("folder", sa.String(length=2000), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_statement_publications_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["royalty_runs.id"],
            name=op.f("fk_statement_publications_run_id_royalty_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["statement_targets.id"],
            name=op.f("fk_statement_publications_target_id_statement_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_publications")),
        sa.UniqueConstraint(
            "run_id", "target_id", name=op.f("uq_statement_publications_run_id_target_id")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("statement_publications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_statement_publications_org_id"), ["org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_statement_publications_run_id"), ["run_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_statement_publications_target_id"), ["target_id"], unique=False
        )

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_name", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("vat_number", sa.String(length=20), nullable=True))

    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("vat_rate", Ratio(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.drop_column("vat_rate")
        batch_op.drop_column("address")

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("vat_number")
        batch_op.drop_column("address")
        batch_op.drop_column("legal_name")

    with op.batch_alter_table("statement_publications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statement_publications_target_id"))
        batch_op.drop_index(batch_op.f("ix_statement_publications_run_id"))
        batch_op.drop_index(batch_op.f("ix_statement_publications_org_id"))

    op.drop_table("statement_publications")
    with op.batch_alter_table("statement_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statement_targets_payee_id"))
        batch_op.drop_index(batch_op.f("ix_statement_targets_org_id"))

    op.drop_table("statement_targets")
