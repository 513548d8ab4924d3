"""contract_terms: effective-dated versions of a contract's fee, reserve, minimum payment and
statement frequency

A contract's own columns stay its first version, in force from its start date, so existing
contracts behave exactly as before; each ``contract_terms`` row is a later, complete version,
in force from its ``effective_from`` until the next one's.

Revision ID: 0010_contract_terms_effective
Revises: 0009_ingest_pending
Create Date: 2026-12-08 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schemas.store.types import Money, Ratio

revision: str = "0010_contract_terms_effective"
down_revision: str | None = "0009_ingest_pending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_terms",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("distribution_fee", Ratio(), nullable=False),
        sa.Column("reserve_rate", Ratio(), nullable=False),
        sa.Column("reserve_periods", sa.Integer(), nullable=False),
        sa.Column("minimum_payment", Money(), nullable=False),
        sa.Column(
            "statement_frequency",
            sa.Enum(
                "monthly",
                "quarterly",
                "half_yearly",
                name="statementfrequency",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "CAST(distribution_fee AS NUMERIC) >= 0 AND CAST(distribution_fee AS NUMERIC) < 1",
            name=op.f("ck_contract_terms_distribution_fee_fraction"),
        ),
        sa.CheckConstraint(
            "CAST(reserve_rate AS NUMERIC) >= 0 AND CAST(reserve_rate AS NUMERIC) < 1",
            name=op.f("ck_contract_terms_reserve_fraction"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_terms_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contract_terms_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_terms")),
        sa.UniqueConstraint(
            "contract_id",
            "effective_from",
            name=op.f("uq_contract_terms_contract_id_effective_from"),
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contract_terms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_terms_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contract_terms_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contract_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_terms_org_id"))
        batch_op.drop_index(batch_op.f("ix_contract_terms_contract_id"))
    op.drop_table("contract_terms")
