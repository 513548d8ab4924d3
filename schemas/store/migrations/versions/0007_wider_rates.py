"""fx_rates.rate and contract_rates.rate: NUMERIC(28, 12), as in the lake

NUMERIC(14, 10) held at most 9,999.9999999999: no rate into IDR or VND (1 USD = 16,250 IDR)
could be stored, and a small inverse rate (1 IDR = 0.000061535 USD) lost digits.

Revision ID: 0007_wider_rates
Revises: 0006_ingest_content_unique
Create Date: 2026-11-26 09:30:00
"""

from collections.abc import Sequence

from alembic import op

from schemas.store.types import Rate, Ratio

revision: str = "0007_wider_rates"
down_revision: str | None = "0006_ingest_content_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("fx_rates", "contract_rates"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("rate", existing_type=Ratio(), type_=Rate(), existing_nullable=False)


def downgrade() -> None:
    for table in ("fx_rates", "contract_rates"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("rate", existing_type=Rate(), type_=Ratio(), existing_nullable=False)
