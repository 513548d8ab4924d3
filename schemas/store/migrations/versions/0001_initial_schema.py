"""Initial schema: the system of record and the revenue ingestion ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schemas.store.types import Money, Ratio

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_org_id"), ["org_id"], unique=False)

    op.create_table(
        "organisations",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("default_currency", sa.String(length=3), nullable=False),
        sa.Column(
            "fx_policy", sa.String(length=32), server_default="period_average", nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organisations_slug")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "artists",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("name_key", sa.String(length=300), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "person",
                "group",
                "organisation",
                name="partykind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("isni", sa.String(length=16), nullable=True),
        sa.Column("ipi", sa.String(length=11), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_artists_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artists")),
        sa.UniqueConstraint("org_id", "name_key", name=op.f("uq_artists_org_id_name_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("artists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artists_org_id"), ["org_id"], unique=False)

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
        sqlite_autoincrement=True,
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
        sqlite_autoincrement=True,
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
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("ingest_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_files_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ingest_files_reporting_period"), ["reporting_period"], unique=False
        )

    op.create_table(
        "payees",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("name_key", sa.String(length=300), nullable=False),
        sa.Column("artist_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("statement_currency", sa.String(length=3), nullable=False),
        sa.Column("withholding_rate", Ratio(), nullable=False),
        sa.Column("vat_number", sa.String(length=20), nullable=True),
        sa.Column("self_billing_consent", sa.Boolean(), nullable=False),
        sa.Column("self_billing_expires", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "CAST(withholding_rate AS NUMERIC) BETWEEN 0 AND 1",
            name=op.f("ck_payees_withholding_fraction"),
        ),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["artists.id"],
            name=op.f("fk_payees_artist_id_artists"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_payees_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payees")),
        sa.UniqueConstraint("org_id", "name_key", name=op.f("uq_payees_org_id_name_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payees_org_id"), ["org_id"], unique=False)

    op.create_table(
        "releases",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("upc", sa.String(length=14), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column(
            "release_type",
            sa.Enum(
                "Album",
                "EP",
                "Single",
                "Compilation",
                name="releasetype",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("label_name", sa.String(length=300), nullable=False),
        sa.Column("artist_id", sa.Integer(), nullable=False),
        sa.Column("original_release_date", sa.Date(), nullable=False),
        sa.Column("territories", sa.String(length=2000), nullable=False),
        sa.Column("genre", sa.String(length=100), nullable=True),
        sa.Column("p_line", sa.String(length=300), nullable=True),
        sa.Column("c_line", sa.String(length=300), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["artists.id"],
            name=op.f("fk_releases_artist_id_artists"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_releases_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("org_id", "upc", name=op.f("uq_releases_org_id_upc")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_releases_org_id"), ["org_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "finance",
                "analyst",
                "payee",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("payee_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(role = 'payee') = (payee_id IS NOT NULL)",
            name=op.f("ck_api_keys_payee_key_bound_to_payee"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_api_keys_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"],
            ["payees.id"],
            name=op.f("fk_api_keys_payee_id_payees"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "contracts",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("payee_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column(
            "basis",
            sa.Enum(
                "net_receipts",
                "gross_receipts",
                "ppd",
                "per_unit",
                name="basis",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("distribution_fee", Ratio(), nullable=False),
        sa.Column("cross_collateral_group", sa.String(length=64), nullable=True),
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
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "CAST(distribution_fee AS NUMERIC) >= 0 AND CAST(distribution_fee AS NUMERIC) < 1",
            name=op.f("ck_contracts_distribution_fee_fraction"),
        ),
        sa.CheckConstraint(
            "CAST(reserve_rate AS NUMERIC) >= 0 AND CAST(reserve_rate AS NUMERIC) < 1",
            name=op.f("ck_contracts_reserve_fraction"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contracts_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"],
            ["payees.id"],
            name=op.f("fk_contracts_payee_id_payees"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("org_id", "reference", name=op.f("uq_contracts_org_id_reference")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contracts_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contracts_payee_id"), ["payee_id"], unique=False)

    op.create_table(
        "tracks",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("isrc", sa.String(length=12), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column("artist_id", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("explicit", sa.Boolean(), nullable=False),
        sa.Column("disc_number", sa.Integer(), nullable=False),
        sa.Column("track_number", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint("duration_seconds > 0", name=op.f("ck_tracks_positive_duration")),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["artists.id"],
            name=op.f("fk_tracks_artist_id_artists"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_tracks_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_tracks_release_id_releases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
        sa.UniqueConstraint("org_id", "isrc", name=op.f("uq_tracks_org_id_isrc")),
        sa.UniqueConstraint(
            "release_id",
            "disc_number",
            "track_number",
            name=op.f("uq_tracks_release_id_disc_number_track_number"),
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracks_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tracks_release_id"), ["release_id"], unique=False)

    op.create_table(
        "contract_charges",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "advance",
                "recoupable_cost",
                name="chargekind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("incurred_on", sa.Date(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "CAST(amount AS NUMERIC) > 0", name=op.f("ck_contract_charges_positive_amount")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_charges_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contract_charges_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_charges")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contract_charges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_charges_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contract_charges_org_id"), ["org_id"], unique=False)

    op.create_table(
        "contract_rates",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("usage_type", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("territories", sa.String(length=2000), nullable=False),
        sa.Column("rate", Ratio(), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_rates_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contract_rates_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_rates")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contract_rates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_rates_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contract_rates_org_id"), ["org_id"], unique=False)

    op.create_table(
        "contributors",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("artist_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "MainArtist",
                "FeaturedArtist",
                "Producer",
                "Composer",
                "Lyricist",
                "MixingEngineer",
                "MasteringEngineer",
                "Remixer",
                "SessionMusician",
                name="contributorrole",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["artists.id"],
            name=op.f("fk_contributors_artist_id_artists"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contributors_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_contributors_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contributors")),
        sa.UniqueConstraint(
            "track_id", "artist_id", "role", name=op.f("uq_contributors_track_id_artist_id_role")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contributors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contributors_org_id"), ["org_id"], unique=False)

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
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("match_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_match_rules_org_id"), ["org_id"], unique=False)

    op.create_table(
        "splits",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("payee_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("share", Ratio(), nullable=False),
        sa.Column("territories", sa.String(length=2000), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(track_id IS NULL) <> (release_id IS NULL)", name=op.f("ck_splits_track_xor_release")
        ),
        sa.CheckConstraint(
            "CAST(share AS NUMERIC) > 0 AND CAST(share AS NUMERIC) <= 1",
            name=op.f("ck_splits_share_fraction"),
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from",
            name=op.f("ck_splits_range_order"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_splits_contract_id_contracts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_splits_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payee_id"], ["payees.id"], name=op.f("fk_splits_payee_id_payees"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_splits_release_id_releases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_splits_track_id_tracks"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_splits")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("splits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_splits_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_splits_payee_id"), ["payee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_splits_release_id"), ["release_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_splits_track_id"), ["track_id"], unique=False)

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
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("suspense_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suspense_items_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("suspense_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suspense_items_org_id"))

    op.drop_table("suspense_items")
    with op.batch_alter_table("splits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_splits_track_id"))
        batch_op.drop_index(batch_op.f("ix_splits_release_id"))
        batch_op.drop_index(batch_op.f("ix_splits_payee_id"))
        batch_op.drop_index(batch_op.f("ix_splits_org_id"))

    op.drop_table("splits")
    with op.batch_alter_table("match_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_rules_org_id"))

    op.drop_table("match_rules")
    with op.batch_alter_table("contributors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contributors_org_id"))

    op.drop_table("contributors")
    with op.batch_alter_table("contract_rates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_rates_org_id"))
        batch_op.drop_index(batch_op.f("ix_contract_rates_contract_id"))

    op.drop_table("contract_rates")
    with op.batch_alter_table("contract_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_charges_org_id"))
        batch_op.drop_index(batch_op.f("ix_contract_charges_contract_id"))

    op.drop_table("contract_charges")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_release_id"))
        batch_op.drop_index(batch_op.f("ix_tracks_org_id"))

    op.drop_table("tracks")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contracts_payee_id"))
        batch_op.drop_index(batch_op.f("ix_contracts_org_id"))

    op.drop_table("contracts")
    op.drop_table("api_keys")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_releases_org_id"))

    op.drop_table("releases")
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payees_org_id"))

    op.drop_table("payees")
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
    with op.batch_alter_table("artists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artists_org_id"))

    op.drop_table("artists")
    op.drop_table("organisations")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_org_id"))

    op.drop_table("audit_log")
