"""DSP delivery: DDEX senders, release deals, batches, deliveries, their events and ACKs

Revision ID: 0002_deliveries
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_deliveries"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_org_id_organisations"),
        ondelete="CASCADE",
    )


def _index(table: str, *columns: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def upgrade() -> None:
    op.create_table(
        "ddex_senders",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("dpid", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        _org_fk("ddex_senders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ddex_senders")),
        sa.UniqueConstraint("org_id", name=op.f("uq_ddex_senders_org_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "release_deals",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("dsp", sa.String(length=64), nullable=True),
        sa.Column("commercial_model", sa.String(length=64), nullable=False),
        sa.Column("use_types", sa.JSON(), nullable=False),
        sa.Column("territories", sa.String(length=2000), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("preorder", sa.Boolean(), nullable=False),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        _org_fk("release_deals"),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_deals_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_deals")),
        sqlite_autoincrement=True,
    )
    _index("release_deals", "org_id", "release_id")
    op.create_table(
        "delivery_batches",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("dsp", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("state", _enum("batchstate", "open", "complete", "failed"), nullable=False),
        sa.Column("manifest", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        _org_fk("delivery_batches"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_batches")),
        sa.UniqueConstraint(
            "org_id", "dsp", "name", name=op.f("uq_delivery_batches_org_id_dsp_name")
        ),
        sqlite_autoincrement=True,
    )
    _index("delivery_batches", "org_id")
    op.create_table(
        "deliveries",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("upc", sa.String(length=14), nullable=False),
        sa.Column("dsp", sa.String(length=64), nullable=False),
        sa.Column("kind", _enum("deliverykind", "full", "takedown", "purge"), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "state",
            _enum(
                "deliverystate",
                "queued",
                "qc_failed",
                "packaged",
                "uploading",
                "uploaded",
                "acknowledged",
                "rejected",
                "failed",
            ),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("message_path", sa.String(length=500), nullable=True),
        sa.Column("staged_path", sa.String(length=2000), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("ack_status", sa.String(length=64), nullable=True),
        sa.Column("ack_text", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        _org_fk("deliveries"),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_deliveries_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["delivery_batches.id"],
            name=op.f("fk_deliveries_batch_id_delivery_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "org_id",
            "release_id",
            "dsp",
            "fingerprint",
            name=op.f("uq_deliveries_org_id_release_id_dsp_fingerprint"),
        ),
        sqlite_autoincrement=True,
    )
    _index("deliveries", "org_id", "release_id", "dsp", "state", "batch_id")
    op.create_table(
        "delivery_events",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        _org_fk("delivery_events"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_events_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
        sqlite_autoincrement=True,
    )
    _index("delivery_events", "org_id", "delivery_id")
    op.create_table(
        "delivery_acks",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("dsp", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=2000), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        _org_fk("delivery_acks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_acks")),
        sa.UniqueConstraint("org_id", "dsp", "name", name=op.f("uq_delivery_acks_org_id_dsp_name")),
        sqlite_autoincrement=True,
    )
    _index("delivery_acks", "org_id")


def downgrade() -> None:
    for table in (
        "delivery_acks",
        "delivery_events",
        "deliveries",
        "delivery_batches",
        "release_deals",
        "ddex_senders",
    ):
        op.drop_table(table)
