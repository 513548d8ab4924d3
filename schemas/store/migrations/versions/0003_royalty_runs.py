"""Royalty runs, statement summaries, contract balance history and PPD prices

Revision ID: 0003_royalty_runs
Revises: 0002_deliveries
Create Date: 2026-11-25 22:57:52.514074
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schemas.store.types import Money

revision: str = "0003_royalty_runs"
down_revision: str | None = "0002_deliveries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ppd_prices",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("usage_type", sa.String(length=32), nullable=False),
        sa.Column("territories", sa.String(length=2000), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint("CAST(price AS NUMERIC) >= 0", name=op.f("ck_ppd_prices_price_sign")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_ppd_prices_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ppd_prices")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("ppd_prices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ppd_prices_org_id"), ["org_id"], unique=False)

    op.create_table(
        "royalty_runs",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "calculated",
                "approved",
                "locked",
                "superseded",
                name="runstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("previous_run_id", sa.Integer(), nullable=True),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("output_dir", sa.String(length=2000), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_royalty_runs_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["previous_run_id"],
            ["royalty_runs.id"],
            name=op.f("fk_royalty_runs_previous_run_id_royalty_runs"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["royalty_runs.id"],
            name=op.f("fk_royalty_runs_supersedes_id_royalty_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_royalty_runs")),
        sa.UniqueConstraint(
            "org_id", "period", "version", name=op.f("uq_royalty_runs_org_id_period_version")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("royalty_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_royalty_runs_org_id"), ["org_id"], unique=False)

    op.create_table(
        "statement_summaries",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("payee_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("opening", Money(), nullable=False),
        sa.Column("earnings", Money(), nullable=False),
        sa.Column("advances", Money(), nullable=False),
        sa.Column("costs", Money(), nullable=False),
        sa.Column("recouped", Money(), nullable=False),
        sa.Column("reserve_held", Money(), nullable=False),
        sa.Column("reserve_released", Money(), nullable=False),
        sa.Column("tax", Money(), nullable=False),
        sa.Column("payable", Money(), nullable=False),
        sa.Column("closing", Money(), nullable=False),
        sa.Column("carried_forward", Money(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_statement_summaries_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"],
            ["payees.id"],
            name=op.f("fk_statement_summaries_payee_id_payees"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["royalty_runs.id"],
            name=op.f("fk_statement_summaries_run_id_royalty_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_summaries")),
        sa.UniqueConstraint(
            "run_id",
            "payee_id",
            "currency",
            name=op.f("uq_statement_summaries_run_id_payee_id_currency"),
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("statement_summaries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_statement_summaries_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_statement_summaries_payee_id"), ["payee_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_statement_summaries_run_id"), ["run_id"], unique=False)

    op.create_table(
        "contract_balances",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("payee_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("opening", Money(), nullable=False),
        sa.Column("earnings", Money(), nullable=False),
        sa.Column("advances", Money(), nullable=False),
        sa.Column("costs", Money(), nullable=False),
        sa.Column("recouped", Money(), nullable=False),
        sa.Column("reserve_held", Money(), nullable=False),
        sa.Column("reserve_released", Money(), nullable=False),
        sa.Column("tax", Money(), nullable=False),
        sa.Column("payable", Money(), nullable=False),
        sa.Column("closing", Money(), nullable=False),
        sa.Column("carried_forward", Money(), nullable=False),
        sa.Column("reserves_outstanding", Money(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_balances_contract_id_contracts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contract_balances_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"],
            ["payees.id"],
            name=op.f("fk_contract_balances_payee_id_payees"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["royalty_runs.id"],
            name=op.f("fk_contract_balances_run_id_royalty_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_balances")),
        sa.UniqueConstraint(
            "run_id", "contract_id", name=op.f("uq_contract_balances_run_id_contract_id")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contract_balances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_balances_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contract_balances_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contract_balances_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contract_balances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_balances_run_id"))
        batch_op.drop_index(batch_op.f("ix_contract_balances_org_id"))
        batch_op.drop_index(batch_op.f("ix_contract_balances_contract_id"))

    op.drop_table("contract_balances")
    with op.batch_alter_table("statement_summaries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statement_summaries_run_id"))
        batch_op.drop_index(batch_op.f("ix_statement_summaries_payee_id"))
        batch_op.drop_index(batch_op.f("ix_statement_summaries_org_id"))

    op.drop_table("statement_summaries")
    with op.batch_alter_table("royalty_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_royalty_runs_org_id"))

    op.drop_table("royalty_runs")
    with op.batch_alter_table("ppd_prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ppd_prices_org_id"))

    op.drop_table("ppd_prices")
