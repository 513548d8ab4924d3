"""revenue ingestion ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schemas.store.types import Ratio

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drops",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret_env", sa.String(length=100), nullable=True),
        sa.Column("format", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_drops_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drops")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_drops_org_id_name")),
    )
    with op.batch_alter_table("drops", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drops_org_id"), ["org_id"], unique=False)

    op.create_table(
        "fx_rates",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("rate", Ratio(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint("CAST(rate AS NUMERIC) > 0", name=op.f("ck_fx_rates_positive_rate")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_fx_rates_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rates")),
        sa.UniqueConstraint(
            "org_id", "base", "quote", "period", name=op.f("uq_fx_rates_org_id_base_quote_period")
        ),
    )
    with op.batch_alter_table("fx_rates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fx_rates_org_id"), ["org_id"], unique=False)

    op.create_table(
        "ingest_files",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("original_name", sa.String(length=1000), nullable=False),
        sa.Column("other_names", sa.JSON(), nullable=False),
        sa.Column("source_url", sa.String(length=2000), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "ingested",
                "quarantined",
                name="ingeststatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reporting_period", sa.String(length=7), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("lines_read", sa.Integer(), nullable=False),
        sa.Column("lines_accepted", sa.Integer(), nullable=False),
        sa.Column("lines_rejected", sa.Integer(), nullable=False),
        sa.Column("lines_matched", sa.Integer(), nullable=False),
        sa.Column("lines_suspense", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("drift", sa.JSON(), nullable=False),
        sa.Column("errors_sample", sa.JSON(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("quarantine_code", sa.String(length=64), nullable=True),
        sa.Column("quarantine_reason", sa.String(length=2000), nullable=True),
        sa.Column("raw_path", sa.String(length=2000), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_ingest_files_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_files")),
        sa.UniqueConstraint("org_id", "sha256", name=op.f("uq_ingest_files_org_id_sha256")),
    )
    with op.batch_alter_table("ingest_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_files_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ingest_files_reporting_period"), ["reporting_period"], unique=False
        )

    op.create_table(
        "match_rules",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "isrc",
                "upc",
                "dsp_resource_id",
                "dsp_release_id",
                "proprietary_id",
                "title_artist",
                name="matchkind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "track_id IS NOT NULL OR release_id IS NOT NULL",
            name=op.f("ck_match_rules_points_somewhere"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_match_rules_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_match_rules_release_id_releases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_match_rules_track_id_tracks"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_rules")),
        sa.UniqueConstraint("org_id", "kind", "key", name=op.f("uq_match_rules_org_id_kind_key")),
    )
    with op.batch_alter_table("match_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_match_rules_org_id"), ["org_id"], unique=False)

    op.create_table(
        "suspense_items",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "isrc",
                "upc",
                "dsp_resource_id",
                "dsp_release_id",
                "proprietary_id",
                "title_artist",
                name="matchkind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("artist", sa.String(length=500), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amounts", sa.JSON(), nullable=False),
        sa.Column("first_period", sa.String(length=7), nullable=True),
        sa.Column("last_period", sa.String(length=7), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "resolved",
                name="suspensestatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_suspense_items_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["match_rules.id"],
            name=op.f("fk_suspense_items_rule_id_match_rules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspense_items")),
        sa.UniqueConstraint(
            "org_id", "kind", "key", name=op.f("uq_suspense_items_org_id_kind_key")
        ),
    )
    with op.batch_alter_table("suspense_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suspense_items_org_id"), ["org_id"], unique=False)

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "fx_policy", sa.String(length=32), server_default="period_average", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("fx_policy")

    with op.batch_alter_table("suspense_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suspense_items_org_id"))

    op.drop_table("suspense_items")
    with op.batch_alter_table("match_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_rules_org_id"))

    op.drop_table("match_rules")
    with op.batch_alter_table("ingest_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_files_reporting_period"))
        batch_op.drop_index(batch_op.f("ix_ingest_files_org_id"))

    op.drop_table("ingest_files")
    with op.batch_alter_table("fx_rates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fx_rates_org_id"))

    op.drop_table("fx_rates")
    with op.batch_alter_table("drops", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drops_org_id"))

    op.drop_table("drops")
