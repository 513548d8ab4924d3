"""The system of record: SQLAlchemy 2 models.

Every row but ``organisations`` carries ``org_id``: the tenant. Effective-dated rows
(``splits``, ``contract_rates``) are never overwritten: a change is a new row with a later
``effective_from``; both bounds are inclusive and ``effective_to`` NULL means open-ended.
Territory sets are stored in their canonical text form (``WW``, ``GB,IE``, ``WW,-US``),
see ``schemas.territories``. CHECK constraints CAST decimals to NUMERIC because SQLite
stores them as text (see ``schemas.store.types``), where a bare comparison would be textual.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from schemas.store.types import Money, Rate, Ratio

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    id: Mapped[int] = mapped_column(primary_key=True)


def name_key(name: str) -> str:
    """Names are unique per organisation regardless of case, on every backend."""
    return " ".join(name.casefold().split())


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _enum(cls: type[enum.Enum]) -> sa.Enum:
    return sa.Enum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Role(enum.StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    ANALYST = "analyst"
    PAYEE = "payee"


class PartyKind(enum.StrEnum):
    PERSON = "person"
    GROUP = "group"
    ORGANISATION = "organisation"


class ReleaseType(enum.StrEnum):
    ALBUM = "Album"
    EP = "EP"
    SINGLE = "Single"
    COMPILATION = "Compilation"


class ContributorRole(enum.StrEnum):
    MAIN_ARTIST = "MainArtist"
    FEATURED_ARTIST = "FeaturedArtist"
    PRODUCER = "Producer"
    COMPOSER = "Composer"
    LYRICIST = "Lyricist"
    MIXER = "MixingEngineer"
    MASTERING = "MasteringEngineer"
    REMIXER = "Remixer"
    SESSION_MUSICIAN = "SessionMusician"


class Basis(enum.StrEnum):
    """What a contract's rate applies to."""

    NET_RECEIPTS = "net_receipts"  # receipts after the distribution fee
    GROSS_RECEIPTS = "gross_receipts"
    PPD = "ppd"  # published price to dealer
    PER_UNIT = "per_unit"  # a fixed amount per unit, in the contract currency


class ChargeKind(enum.StrEnum):
    ADVANCE = "advance"
    RECOUPABLE_COST = "recoupable_cost"


class StatementFrequency(enum.StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"


class Organisation(Base):
    __tablename__ = "organisations"
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    default_currency: Mapped[str] = mapped_column(sa.String(3), default="EUR")
    # How report currencies are converted to default_currency: the rate of the line's
    # reporting period ("period_average", the default) from fx_rates.
    fx_policy: Mapped[str] = mapped_column(
        sa.String(32), default="period_average", server_default="period_average"
    )
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    # The label as the customer on self-billing invoices (postal address, VAT registration).
    legal_name: Mapped[str | None] = mapped_column(sa.String(300))
    address: Mapped[str | None] = mapped_column(sa.String(1000))
    vat_number: Mapped[str | None] = mapped_column(sa.String(20))


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint(
            "(role = 'payee') = (payee_id IS NOT NULL)", name="payee_key_bound_to_payee"
        ),
    )
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[Role] = mapped_column(_enum(Role))
    payee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payees.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Portal sessions of this key carry the epoch they were signed in under: signing out
    # moves it on, so every earlier session cookie of the key is refused from then on.
    portal_epoch: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class Artist(Base):
    """A party: performer, band, producer, songwriter."""

    __tablename__ = "artists"
    __table_args__ = (sa.UniqueConstraint("org_id", "name_key"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(300))
    name_key: Mapped[str] = mapped_column(sa.String(300))  # casefolded: "MØ" = "mø"
    kind: Mapped[PartyKind] = mapped_column(_enum(PartyKind), default=PartyKind.PERSON)
    isni: Mapped[str | None] = mapped_column(sa.String(16))
    ipi: Mapped[str | None] = mapped_column(sa.String(11))
    country: Mapped[str | None] = mapped_column(sa.String(2))

    @validates("name")
    def _key(self, _: str, value: str) -> str:
        self.name_key = name_key(value)
        return value


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (sa.UniqueConstraint("org_id", "upc"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    upc: Mapped[str] = mapped_column(sa.String(14))
    title: Mapped[str] = mapped_column(sa.String(500))
    release_type: Mapped[ReleaseType] = mapped_column(_enum(ReleaseType))
    label_name: Mapped[str] = mapped_column(sa.String(300))
    artist_id: Mapped[int] = mapped_column(sa.ForeignKey("artists.id", ondelete="RESTRICT"))
    original_release_date: Mapped[dt.date] = mapped_column(sa.Date)
    territories: Mapped[str] = mapped_column(sa.String(2000), default="WW")
    genre: Mapped[str | None] = mapped_column(sa.String(100))
    p_line: Mapped[str | None] = mapped_column(sa.String(300))
    c_line: Mapped[str | None] = mapped_column(sa.String(300))


class Track(Base):
    """A sound recording on a release (one ISRC per organisation)."""

    __tablename__ = "tracks"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "isrc"),
        sa.UniqueConstraint("release_id", "disc_number", "track_number"),
        sa.CheckConstraint("duration_seconds > 0", name="positive_duration"),
    )
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    release_id: Mapped[int] = mapped_column(
        sa.ForeignKey("releases.id", ondelete="RESTRICT"), index=True
    )
    isrc: Mapped[str] = mapped_column(sa.String(12))
    title: Mapped[str] = mapped_column(sa.String(500))
    version: Mapped[str | None] = mapped_column(sa.String(200))
    artist_id: Mapped[int] = mapped_column(sa.ForeignKey("artists.id", ondelete="RESTRICT"))
    duration_seconds: Mapped[int] = mapped_column(sa.Integer)
    explicit: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disc_number: Mapped[int] = mapped_column(sa.Integer, default=1)
    track_number: Mapped[int] = mapped_column(sa.Integer)
    contributors: Mapped[list[Contributor]] = relationship(
        viewonly=True, lazy="selectin", order_by="(Contributor.sequence, Contributor.id)"
    )


class Contributor(Base):
    __tablename__ = "contributors"
    __table_args__ = (sa.UniqueConstraint("track_id", "artist_id", "role"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    track_id: Mapped[int] = mapped_column(sa.ForeignKey("tracks.id", ondelete="CASCADE"))
    artist_id: Mapped[int] = mapped_column(sa.ForeignKey("artists.id", ondelete="RESTRICT"))
    role: Mapped[ContributorRole] = mapped_column(_enum(ContributorRole))
    sequence: Mapped[int] = mapped_column(sa.Integer, default=1)


class Payee(Base):
    __tablename__ = "payees"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "name_key"),
        sa.CheckConstraint(
            "CAST(withholding_rate AS NUMERIC) BETWEEN 0 AND 1", name="withholding_fraction"
        ),
    )
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(300))
    name_key: Mapped[str] = mapped_column(sa.String(300))
    artist_id: Mapped[int | None] = mapped_column(sa.ForeignKey("artists.id", ondelete="RESTRICT"))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    country: Mapped[str | None] = mapped_column(sa.String(2))
    statement_currency: Mapped[str] = mapped_column(sa.String(3))
    withholding_rate: Mapped[Decimal] = mapped_column(Ratio(), default=Decimal(0))
    vat_number: Mapped[str | None] = mapped_column(sa.String(20))
    self_billing_consent: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    self_billing_expires: Mapped[dt.date | None] = mapped_column(sa.Date)
    # The payee as the supplier on a self-billing invoice: postal address and the VAT rate
    # their supply is charged at (None: no VAT invoice can be raised).
    address: Mapped[str | None] = mapped_column(sa.String(1000))
    vat_rate: Mapped[Decimal | None] = mapped_column(Ratio())

    @validates("name")
    def _key(self, _: str, value: str) -> str:
        self.name_key = name_key(value)
        return value


def _term_checks() -> tuple[sa.CheckConstraint, ...]:
    """A contract's effective-dated terms, on the contract and on each later version."""
    return (
        sa.CheckConstraint(
            "CAST(reserve_rate AS NUMERIC) >= 0 AND CAST(reserve_rate AS NUMERIC) < 1",
            name="reserve_fraction",
        ),
        sa.CheckConstraint(
            "CAST(distribution_fee AS NUMERIC) >= 0 AND CAST(distribution_fee AS NUMERIC) < 1",
            name="distribution_fee_fraction",
        ),
    )


class Contract(Base):
    __tablename__ = "contracts"
    __table_args__ = (sa.UniqueConstraint("org_id", "reference"), *_term_checks())
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    payee_id: Mapped[int] = mapped_column(
        sa.ForeignKey("payees.id", ondelete="RESTRICT"), index=True
    )
    reference: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(300))
    basis: Mapped[Basis] = mapped_column(_enum(Basis))
    currency: Mapped[str] = mapped_column(sa.String(3))
    distribution_fee: Mapped[Decimal] = mapped_column(Ratio(), default=Decimal(0))
    cross_collateral_group: Mapped[str | None] = mapped_column(sa.String(64))
    reserve_rate: Mapped[Decimal] = mapped_column(Ratio(), default=Decimal(0))
    reserve_periods: Mapped[int] = mapped_column(sa.Integer, default=0)
    minimum_payment: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    statement_frequency: Mapped[StatementFrequency] = mapped_column(_enum(StatementFrequency))
    start_date: Mapped[dt.date] = mapped_column(sa.Date)
    end_date: Mapped[dt.date | None] = mapped_column(sa.Date)


class ContractTerms(Base):
    """A later version of a contract's terms, in force from ``effective_from`` until the next
    version's (the contract's own columns are its first version, from its start date).

    Every version is complete: a field left out when the version was added was copied from
    the version in force the day before. A run uses the version in force on its period's
    first day (``royalty_engine.terms.terms_in_force``).
    """

    __tablename__ = "contract_terms"
    __table_args__ = (sa.UniqueConstraint("contract_id", "effective_from"), *_term_checks())
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    effective_from: Mapped[dt.date] = mapped_column(sa.Date)
    distribution_fee: Mapped[Decimal] = mapped_column(Ratio())
    reserve_rate: Mapped[Decimal] = mapped_column(Ratio())
    reserve_periods: Mapped[int] = mapped_column(sa.Integer)
    minimum_payment: Mapped[Decimal] = mapped_column(Money())
    statement_frequency: Mapped[StatementFrequency] = mapped_column(_enum(StatementFrequency))


class ContractRate(Base):
    """A royalty rate, effective-dated; ``tiers`` are escalations by cumulative units."""

    __tablename__ = "contract_rates"
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    usage_type: Mapped[str] = mapped_column(sa.String(32), default="*")
    channel: Mapped[str] = mapped_column(sa.String(64), default="*")
    territories: Mapped[str] = mapped_column(sa.String(2000), default="WW")
    rate: Mapped[Decimal] = mapped_column(Rate())
    # [{"from_units": 100000, "rate": "0.20"}, ...] ascending; decimals as strings.
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    effective_from: Mapped[dt.date] = mapped_column(sa.Date)
    effective_to: Mapped[dt.date | None] = mapped_column(sa.Date)


class ContractCharge(Base):
    """An advance or recoupable cost, dated, recouped from the contract's royalties."""

    __tablename__ = "contract_charges"
    __table_args__ = (sa.CheckConstraint("CAST(amount AS NUMERIC) > 0", name="positive_amount"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ChargeKind] = mapped_column(_enum(ChargeKind))
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(sa.String(3))
    incurred_on: Mapped[dt.date] = mapped_column(sa.Date)
    description: Mapped[str] = mapped_column(sa.String(500), default="")


class Split(Base):
    """Who gets what share of a track (or of every track of a release).

    Track-level splits, where any exist for a date and territory, replace the release-level
    splits for that track. Whatever share is not split is the label's.
    """

    __tablename__ = "splits"
    __table_args__ = (
        sa.CheckConstraint("(track_id IS NULL) <> (release_id IS NULL)", name="track_xor_release"),
        sa.CheckConstraint(
            "CAST(share AS NUMERIC) > 0 AND CAST(share AS NUMERIC) <= 1", name="share_fraction"
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from", name="range_order"
        ),
    )
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    track_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("tracks.id", ondelete="RESTRICT"), index=True
    )
    release_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("releases.id", ondelete="RESTRICT"), index=True
    )
    payee_id: Mapped[int] = mapped_column(
        sa.ForeignKey("payees.id", ondelete="RESTRICT"), index=True
    )
    contract_id: Mapped[int] = mapped_column(sa.ForeignKey("contracts.id", ondelete="RESTRICT"))
    share: Mapped[Decimal] = mapped_column(Ratio())
    territories: Mapped[str] = mapped_column(sa.String(2000), default="WW")
    effective_from: Mapped[dt.date] = mapped_column(sa.Date)
    effective_to: Mapped[dt.date | None] = mapped_column(sa.Date)


class AuditEntry(Base):
    """One write to the store: who, when, what, before and after (written by ``audit``)."""

    __tablename__ = "audit_log"
    org_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    actor: Mapped[str] = mapped_column(sa.String(100))
    api_key_id: Mapped[int | None] = mapped_column(sa.Integer)
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    entity: Mapped[str] = mapped_column(sa.String(64))
    entity_id: Mapped[int | None] = mapped_column(sa.Integer)
    action: Mapped[str] = mapped_column(sa.String(16))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


# --- revenue ingestion ---------------------------------------------------------------------
class IngestStatus(enum.StrEnum):
    # being read: its lines (if any reached the lake) count for nothing until the row is
    # flipped to ``ingested``, the ingestion's one commit point (``pipelines.ingest.files``)
    PENDING = "pending"
    INGESTED = "ingested"
    QUARANTINED = "quarantined"


class IngestFile(Base):
    """The ingestion ledger: one row per distinct file (by SHA-256) per organisation."""

    __tablename__ = "ingest_files"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "sha256"),
        # one ingested file per content (quarantined files have none): see migration 0006
        sa.Index("ix_ingest_files_org_content", "org_id", "content_sha256", unique=True),
    )
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(sa.String(64))
    # what the file says, whatever its wrapping: SHA-256 over its lines' raw hashes in order
    # (a report re-sent gzipped, zipped or in UTF-16 has other bytes but the same content)
    content_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    original_name: Mapped[str] = mapped_column(sa.String(1000))
    # where the same bytes arrived again (source URLs, or names): recorded, never re-ingested
    other_names: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    source_url: Mapped[str] = mapped_column(sa.String(2000), default="")
    size: Mapped[int] = mapped_column(sa.BigInteger)
    format: Mapped[str | None] = mapped_column(sa.String(64))
    # the organisation's own spec version it was read with (None: a built-in format)
    format_version: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[IngestStatus] = mapped_column(_enum(IngestStatus))
    reporting_period: Mapped[str | None] = mapped_column(sa.String(7), index=True)
    period_start: Mapped[dt.date | None] = mapped_column(sa.Date)
    period_end: Mapped[dt.date | None] = mapped_column(sa.Date)
    lines_read: Mapped[int] = mapped_column(sa.Integer, default=0)
    lines_accepted: Mapped[int] = mapped_column(sa.Integer, default=0)
    lines_rejected: Mapped[int] = mapped_column(sa.Integer, default=0)
    lines_matched: Mapped[int] = mapped_column(sa.Integer, default=0)
    lines_suspense: Mapped[int] = mapped_column(sa.Integer, default=0)
    # {"EUR": {"accepted": "12.34", "rejected": "0", "declared": "12.34"}, ...} as text
    totals: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    drift: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    errors_sample: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    error_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    quarantine_code: Mapped[str | None] = mapped_column(sa.String(64))
    quarantine_reason: Mapped[str | None] = mapped_column(sa.String(2000))
    raw_path: Mapped[str] = mapped_column(sa.String(2000))
    outputs: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)  # paths written
    received_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    # the process reading a ``pending`` file (host, pid, the pid's start time): recovery
    # removes a pending file only once that process is gone (``pipelines.ingest.files.recover``)
    owner_host: Mapped[str | None] = mapped_column(sa.String(255))
    owner_pid: Mapped[int | None] = mapped_column(sa.Integer)
    owner_start: Mapped[str | None] = mapped_column(sa.String(64))


class OrgFormat(Base):
    """One version of an organisation's own format spec (``tunemantra formats add``).

    A changed spec is a new version; ``retired_at`` set on every version means removed (the
    versions stay for history: ingested files name the version they were read with).
    """

    __tablename__ = "org_formats"
    __table_args__ = (sa.UniqueConstraint("org_id", "name", "version"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int] = mapped_column(sa.Integer)
    spec_yaml: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


class MatchKind(enum.StrEnum):
    ISRC = "isrc"  # an alias ISRC (e.g. a DSP's re-issued code) for a track
    UPC = "upc"
    DSP_RESOURCE = "dsp_resource_id"
    DSP_RELEASE = "dsp_release_id"
    PROPRIETARY = "proprietary_id"
    TITLE_ARTIST = "title_artist"  # "title|artist", case-folded


class MatchRule(Base):
    """A remembered match (alias or manual resolution of suspense): key -> track/release."""

    __tablename__ = "match_rules"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "kind", "key"),
        sa.CheckConstraint(
            "track_id IS NOT NULL OR release_id IS NOT NULL", name="points_somewhere"
        ),
    )
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[MatchKind] = mapped_column(_enum(MatchKind))
    key: Mapped[str] = mapped_column(sa.String(500))
    track_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tracks.id", ondelete="RESTRICT"))
    release_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("releases.id", ondelete="RESTRICT")
    )
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)


class FxRate(Base):
    """A currency rate for a period (``YYYY-MM``): 1 ``base`` = ``rate`` ``quote``."""

    __tablename__ = "fx_rates"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "base", "quote", "period"),
        sa.CheckConstraint("CAST(rate AS NUMERIC) > 0", name="positive_rate"),
    )
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    base: Mapped[str] = mapped_column(sa.String(3))
    quote: Mapped[str] = mapped_column(sa.String(3))
    period: Mapped[str] = mapped_column(sa.String(7))
    rate: Mapped[Decimal] = mapped_column(Rate())
    source: Mapped[str] = mapped_column(sa.String(200))


class Drop(Base):
    """Where an organisation's report files arrive (local folder, SFTP, S3). Credentials are
    never stored here: ``secret_env`` names the environment variable that holds them."""

    __tablename__ = "drops"
    __table_args__ = (sa.UniqueConstraint("org_id", "name"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(64))
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret_env: Mapped[str | None] = mapped_column(sa.String(100))
    format: Mapped[str | None] = mapped_column(sa.String(64))  # override detection
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class SuspenseStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"  # a match rule exists; lines are re-matched by the next rematch


class SuspenseItem(Base):
    """Unmatched revenue grouped by its best identifier (rebuilt from the lake by rematch)."""

    __tablename__ = "suspense_items"
    __table_args__ = (sa.UniqueConstraint("org_id", "kind", "key"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[MatchKind] = mapped_column(_enum(MatchKind))
    key: Mapped[str] = mapped_column(sa.String(500))
    reason: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str | None] = mapped_column(sa.String(500))
    artist: Mapped[str | None] = mapped_column(sa.String(500))
    sources: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    lines: Mapped[int] = mapped_column(sa.Integer)
    quantity: Mapped[int] = mapped_column(sa.BigInteger)
    amounts: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)  # currency -> text
    first_period: Mapped[str | None] = mapped_column(sa.String(7))
    last_period: Mapped[str | None] = mapped_column(sa.String(7))
    status: Mapped[SuspenseStatus] = mapped_column(_enum(SuspenseStatus))
    rule_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("match_rules.id", ondelete="SET NULL")
    )


# SQLite would reuse the id of a deleted row (the audit log would then mix two histories):
# AUTOINCREMENT makes ids never come back.
for _table in Base.metadata.tables.values():
    _table.dialect_kwargs["sqlite_autoincrement"] = True
