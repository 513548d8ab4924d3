"""What a payee's statement says, gathered once per run for every renderer, the API and the
portal.

A ``Statement`` is one payee's statement for one run in one currency (a payee whose
contracts are in two currencies gets two). Its figures come from the run (the store's
statement summary and the run's ledger); its line-level detail is derived from the run's
inputs and snapshot (``pipelines.royalty.preview.run_detail``) and adds up, per contract, to the
run's earnings to the cent — ``Statement.check()`` proves it before anything is rendered.

Everything a renderer needs is here, already in the order it is shown, so the same run always
renders the same bytes: ``issued`` (the run's lock, approval or calculation time) is the only
date on a statement, and track titles and ISRCs come from the run's own snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pycountry
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat

from pipelines.royalty.preview import run_detail
from pipelines.royalty.verification import open_run
from royalty_engine.periods import RunError, parse_period
from schemas.money import CENT, allocate, converted, format_amount, vat_cents
from schemas.statement_figures import (
    FIGURES,
    POOL_FIGURES,
    SIGNED,
    SUMMARY_FIELDS,
    closing_terms,
    status_words,
)
from schemas.store.models import Organisation, Payee, Release
from schemas.store.runs import RoyaltyRun, RunStatus, StatementSummary
from schemas.territories import UNKNOWN

TOP_TRACKS = 10
HISTORY_PERIODS = 6
# The line-level detail every format carries (CSV columns, XLSX detail sheet, JSON lines).
DETAIL_COLUMNS: dict[str, str] = {
    "contract": "contract reference",
    "isrc": "ISRC of the recording",
    "track_title": "track title (from the run's snapshot)",
    "upc": "UPC of the release",
    "release_title": "release title",
    "source": "the store that reported the revenue (its service: Spotify, Apple Music, ...; "
    "a report naming none: its report format)",
    "territory": "ISO 3166-1 alpha-2 territory of use (WW: worldwide; ZZ: unknown)",
    "usage_type": "stream, download, ugc, ...",
    "reporting_period": "month the revenue was reported for (YYYY-MM)",
    "quantity": "units (plays, downloads, views) as reported",
    "amount": "royalty in the contract's currency (see currency), rounded so each "
    "contract's lines add up to its earnings",
    "currency": "ISO 4217 code of amount",
}
# Self-billing invoices (UK HMRC VAT Notice 700/62): the wording the invoice must carry.
SELF_BILLING_WORDING = "The VAT shown is your output tax due to HMRC."


class StatementError(RunError):
    """A statement that cannot be produced (no such statement, run not ready, detail that
    does not add up); ``code`` says which."""


@dataclass(frozen=True)
class Party:
    name: str
    address: str | None = None
    vat_number: str | None = None


@dataclass(frozen=True)
class Amount:
    """One row of a breakdown: ``key`` is the code (source, ISO territory, ISRC), ``label``
    what a person reads."""

    key: str
    label: str
    amount: Decimal
    quantity: int


@dataclass(frozen=True)
class HistoryPoint:
    period: str
    earnings: Decimal
    payable: Decimal
    closing: Decimal


@dataclass(frozen=True)
class Invoice:
    """A self-billing invoice for the payee's supply to the label this statement: the net
    value is what the statement pays plus any tax withheld from it (withholding settles the
    payee's income tax; it does not reduce the consideration VAT is charged on). The label
    pays ``to_pay`` = net + VAT − withheld. VAT is also shown in sterling (HMRC requires it
    on an invoice in another currency), at the run's rate for the period's last month."""

    number: str
    date: dt.date
    net: Decimal
    vat_rate: Decimal
    vat: Decimal
    gross: Decimal
    withheld: Decimal = Decimal("0.00")
    to_pay: Decimal = Decimal("0.00")
    vat_gbp: Decimal | None = None  # None when the invoice is in GBP
    gbp_rate: Decimal | None = None
    wording: str = SELF_BILLING_WORDING
    # A correction's re-issued invoice: the credit note that cancelled the earlier invoice.
    credit_note: str | None = None


@dataclass(frozen=True)
class CreditNote:
    """A credit note cancelling, in full, the self-billing invoice of an earlier version of
    this statement: a correction of the period re-issues the statement (and its invoice, if
    anything is payable), and the earlier invoice is credited so that only one stands. Its
    amounts are the earlier invoice's, credited (shown negative); ``number`` is its own,
    ``original`` the invoice it credits; the re-issued invoice names this credit note."""

    number: str
    date: dt.date
    original: str
    original_date: dt.date
    statement_id: int  # the earlier version's statement the original invoice was for
    version: int  # that statement's run version
    net: Decimal
    vat_rate: Decimal
    vat: Decimal
    gross: Decimal
    withheld: Decimal
    to_pay: Decimal
    vat_gbp: Decimal | None = None
    gbp_rate: Decimal | None = None
    reason: str = "Correction of the period: the statement was re-issued."


@dataclass(frozen=True)
class Conversion:
    """The statement's figures in the payee's statement currency: converted at the run's
    rate (``1 <statement currency> = rate <currency>``) for ``month`` (the period's last with
    a rate the run recorded), each rounded once (``schemas.money.converted``; the terms of the
    closing balance's sum allocated so that its formula holds in this currency too, see
    ``converted_figures``). The figures in the contracts' currency stay the source of
    truth."""

    currency: str
    rate: Decimal
    month: str
    source: str
    figures: dict[str, Decimal]

    @property
    def rate_text(self) -> str:
        return f"{format(self.rate.normalize(), 'f')}"


@dataclass(frozen=True)
class PayeeFacts:
    """The payee as the run froze it (``context/payees.parquet``)."""

    id: int
    name: str
    address: str | None
    vat_number: str | None
    vat_rate: Decimal | None
    self_billing_consent: bool
    self_billing_expires: dt.date | None


@dataclass
class Statement:
    statement_id: int
    org_id: int
    org_slug: str
    label: Party
    payee_id: int
    payee: Party
    run_id: int
    version: int
    period: str
    period_start: dt.date
    period_end: dt.date
    run_status: str  # final | preview | superseded (see statement_status)
    issued: dt.datetime  # the run's approval (or, for a preview, calculation) time, UTC
    currency: str
    figures: dict[str, Decimal]
    contracts: list[dict[str, Any]]  # reference, status and FIGURES per contract
    by_source: list[Amount]
    by_territory: list[Amount]
    by_usage: list[Amount]
    top_tracks: list[Amount]  # key: ISRC, label: title
    history: list[HistoryPoint]  # oldest first, ending with this period
    lines: pl.DataFrame  # DETAIL_COLUMNS, sorted
    invoice: Invoice | None = None
    invoice_refused: str | None = None  # why a self-billing payee gets no invoice
    notes: list[str] = field(default_factory=list)
    # the payee's statement currency when it is not ``currency``: the figures converted
    conversion: Conversion | None = None
    conversion_missing: str | None = None  # why a statement currency could not be shown
    credit_note: CreditNote | None = None  # the earlier version's invoice, credited

    @property
    def status(self) -> str:
        """The statement's status code: ``paid`` when something is payable, else the
        contracts' reason (below the minimum, unrecouped, not a payment date), else
        ``nothing_payable``."""
        if self.figures["payable"] > 0:
            return "paid"
        codes = {c["status"] for c in self.contracts}
        for code in ("below_minimum", "unrecouped", "not_statement_date"):
            if code in codes:
                return code
        return "nothing_payable"

    @property
    def status_text(self) -> str:
        return status_words(self.status)

    @property
    def invoice_refused_text(self) -> str | None:
        """Why a self-billing payee has no invoice, in words (``invoice_refused`` without its
        code: "No invoice for a statement with nothing to pay")."""
        if not self.invoice_refused:
            return None
        code, _, why = self.invoice_refused.partition(": ")
        return (why[:1].upper() + why[1:]) if why else status_words(code)

    def formula(self, figures: dict[str, Decimal] | None = None, currency: str = "") -> str:
        """The closing balance as the sum of the figures printed above it (in ``currency``'s
        figures, the statement's own by default): ``Closing balance 12.00 = Opening balance
        0.00 + Royalties earned 20.00 - ... - Payable 8.00``."""
        f = self.figures if figures is None else figures
        ccy = currency or self.currency
        parts = []
        for sign, label, amount in closing_terms(f):
            parts.append(
                f"{sign} {label} {format_amount(amount)}"
                if sign
                else f"{label} {format_amount(amount)}"
            )
        return f"Closing balance {format_amount(f['closing'])} {ccy} = " + " ".join(parts)

    @property
    def credit_note_stem(self) -> str:
        return self.file_stem.replace("statement_", "credit_note_", 1)

    @property
    def pooled(self) -> bool:
        """Some contracts of this statement are cross-collateralised (``pool`` set)."""
        return any(c.get("pool") for c in self.contracts)

    @property
    def file_stem(self) -> str:
        """``statement_<org>_<period>_v<version>_payee<id>_<CCY>``: unique per statement."""
        return (
            f"statement_{self.org_slug}_{self.period}_v{self.version}"
            f"_payee{self.payee_id}_{self.currency}"
        )

    @property
    def invoice_stem(self) -> str:
        return self.file_stem.replace("statement_", "invoice_", 1)

    def check(self) -> None:
        """The detail adds up to the earnings (to the cent), the closing balance is the sum
        its formula prints (in every currency shown), each contract's row adds up the same way
        (with what moved within its pool) and the contracts add up to the statement; or
        nothing is rendered."""
        total = sum(self.lines["amount"].to_list(), Decimal(0)) if self.lines.height else Decimal(0)
        if total != self.figures["earnings"]:
            raise StatementError(
                "detail_mismatch",
                f"statement {self.statement_id}: detail lines add up to {total} "
                f"{self.currency}, earnings are {self.figures['earnings']}",
            )
        shown = [self.figures] + ([self.conversion.figures] if self.conversion else [])
        for f in shown:
            if closing_sum(f) != f["closing"]:
                raise StatementError(
                    "formula_mismatch",
                    f"statement {self.statement_id}: {self.formula(f)} does not add up",
                )
        for c in self.contracts:
            if closing_sum(c) + (c.get("pool_transfer") or 0) != c["closing"]:
                raise StatementError(
                    "formula_mismatch",
                    f"statement {self.statement_id}: contract {c['reference']} does not add up",
                )
        for key in ("opening", *SIGNED, "closing"):
            if (
                self.contracts
                and sum((c[key] for c in self.contracts), Decimal(0)) != (self.figures[key])
            ):
                raise StatementError(
                    "formula_mismatch",
                    f"statement {self.statement_id}: the contracts' {key} do not add up to the "
                    "statement's",
                )


def closing_sum(figures: dict[str, Any]) -> Decimal:
    """``opening`` plus the signed figures (``schemas.statement_figures.SIGNED``)."""
    return figures["opening"] + sum(
        (sign * figures[key] for key, sign in SIGNED.items()), Decimal(0)
    )


# --- building ---------------------------------------------------------------------------------
def statement_status(status: RunStatus) -> str:
    """What a statement says about its run: ``final`` once approved (approved or locked),
    ``preview`` before, ``superseded`` when a later version replaced it."""
    if status in (RunStatus.APPROVED, RunStatus.LOCKED):
        return "final"
    return "superseded" if status is RunStatus.SUPERSEDED else "preview"


def _d(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(value).quantize(CENT)


def territory_name(code: str) -> str:
    if code in ("", "WW"):
        return "Worldwide / not reported"
    if code == UNKNOWN:  # the report gave none, or one nobody could place
        return "Unknown territory"
    country = pycountry.countries.get(alpha_2=code)
    return str(country.name) if country is not None else code


def _breakdown(frame: pl.DataFrame, key: str, label: str | None = None) -> list[Amount]:
    cols = [key] if label is None else [key, label]
    if not frame.height:
        return []
    agg = (
        frame.group_by(cols)
        .agg(pl.col("amount").sum(), pl.col("quantity").sum())
        .sort(["amount", key], descending=[True, False])
    )
    rows = []
    for row in agg.iter_rows(named=True):
        code = row[key] or ""
        shown = row[label] if label is not None else code
        if key == "territory":
            shown = territory_name(code)
        rows.append(Amount(code, shown or code, _d(row["amount"]), int(row["quantity"] or 0)))
    return rows


def vat_number_valid(number: str | None) -> bool:
    if not number:
        return False
    return bool(gb_vat.is_valid(number) or eu_vat.is_valid(number))


def _invoice(
    payee: PayeeFacts,
    org_slug: str,
    period: str,
    version: int,
    issued: dt.datetime,
    currency: str,
    figures: dict[str, Decimal],
    to_gbp: Decimal | None,
) -> tuple[Invoice | None, str | None]:
    """A self-billing invoice when the payee agreed to self-billing, the agreement covers the
    statement date, the payee's VAT number is valid and there is something payable."""
    payable, withheld = figures["payable"], figures["tax"]
    if not payee.self_billing_consent:
        return None, None
    if payee.self_billing_expires is not None and payee.self_billing_expires < issued.date():
        return None, f"self_billing_expired: the agreement ended {payee.self_billing_expires}"
    if not vat_number_valid(payee.vat_number):
        return None, f"vat_number_invalid: {payee.vat_number!r} is not a valid VAT number"
    if payee.vat_rate is None:
        return None, "vat_rate_missing: the payee has no VAT rate on record"
    if payable <= 0:
        return None, "nothing_payable: no invoice for a statement with nothing to pay"
    if currency != "GBP" and to_gbp is None:
        return None, f"fx_missing: no {currency}/GBP rate in the run for the VAT in sterling"
    rate = Decimal(payee.vat_rate)
    net = payable + withheld
    vat = vat_cents(net * rate)
    vat_gbp = None if to_gbp is None else vat_cents(vat * to_gbp)
    number = f"SB-{org_slug}-{period}-v{version}-{payee.id}-{currency}"
    return (
        Invoice(
            number,
            issued.date(),
            net,
            rate,
            vat,
            net + vat,
            withheld=withheld,
            to_pay=net + vat - withheld,
            vat_gbp=vat_gbp,
            gbp_rate=to_gbp,
        ),
        None,
    )


def _payee_facts(folder: Path, live: dict[int, Payee]) -> dict[int, PayeeFacts]:
    """The payees as the run froze them; runs recorded before the freeze read the store."""
    frozen = folder / "context" / "payees.parquet"
    if frozen.exists():
        return {
            r["payee_id"]: PayeeFacts(
                r["payee_id"],
                r["name"],
                r["address"],
                r["vat_number"],
                None if r["vat_rate"] is None else Decimal(r["vat_rate"]),
                bool(r["self_billing_consent"]),
                r["self_billing_expires"],
            )
            for r in pl.read_parquet(frozen).iter_rows(named=True)
        }
    return {
        p.id: PayeeFacts(
            p.id,
            p.name,
            p.address,
            p.vat_number,
            None if p.vat_rate is None else Decimal(p.vat_rate),
            bool(p.self_billing_consent),
            p.self_billing_expires,
        )
        for p in live.values()
    }


def _to_gbp(folder: Path, currency: str, month: str) -> Decimal | None:
    from royalty_engine.earnings import FxTable

    if currency == "GBP":
        return None
    fx = FxTable(pl.read_parquet(folder / "snapshot" / "fx.parquet"))
    rate = fx.rate(currency, "GBP", month)
    return rate if rate else None


@dataclass(frozen=True)
class _RunInfo:
    run_id: int
    org_id: int
    org_slug: str
    label: Party
    period: str
    version: int
    period_start: dt.date
    period_end: dt.date
    status: str
    issued: dt.datetime


def _histories(
    session: Session, run: RoyaltyRun, payee_ids: list[int]
) -> dict[tuple[int, str], list[HistoryPoint]]:
    """Per payee and currency: this period and up to five before it, each period as its
    approved or locked run (the latest version) showed it; this period as this run has it."""
    rows = session.execute(
        sa.select(
            RoyaltyRun.id,
            RoyaltyRun.period,
            RoyaltyRun.version,
            RoyaltyRun.period_end,
            StatementSummary.payee_id,
            StatementSummary.currency,
            StatementSummary.earnings,
            StatementSummary.payable,
            StatementSummary.closing,
        )
        .join(StatementSummary, StatementSummary.run_id == RoyaltyRun.id)
        .where(
            RoyaltyRun.org_id == run.org_id,
            StatementSummary.payee_id.in_(payee_ids),
            RoyaltyRun.period_end <= run.period_end,
            sa.or_(
                RoyaltyRun.id == run.id,
                RoyaltyRun.status.in_([RunStatus.APPROVED, RunStatus.LOCKED]),
            ),
        )
    ).all()
    latest: dict[tuple[int, str], dict[str, tuple[int, dt.date, HistoryPoint]]] = {}
    for run_id, period, version, end, payee_id, currency, earnings, payable, closing in rows:
        if period == run.period and run_id != run.id:
            continue
        rank = 1 << 30 if run_id == run.id else version
        point = HistoryPoint(period, _d(earnings), _d(payable), _d(closing))
        per = latest.setdefault((payee_id, currency), {})
        if period not in per or rank > per[period][0]:
            per[period] = (rank, end, point)
    return {
        key: [p for _, _, p in sorted(per.values(), key=lambda v: v[1])][-HISTORY_PERIODS:]
        for key, per in latest.items()
    }


def _detail_frame(detail: pl.DataFrame, folder: Path, releases: pl.DataFrame) -> pl.DataFrame:
    """Detail rows with the names people read: contract reference, ISRC and title (from the
    run's snapshot), UPC and release title."""
    tracks = pl.read_parquet(folder / "snapshot" / "tracks.parquet").select(
        "track_id", "isrc", pl.col("title").alias("track_title")
    )
    contracts = pl.read_parquet(folder / "snapshot" / "contracts.parquet").select(
        "contract_id", pl.col("reference").alias("contract")
    )
    return (
        detail.join(tracks, on="track_id", how="left")
        .join(contracts, on="contract_id", how="left")
        .join(releases, on="release_id", how="left")
        .with_columns(
            pl.col("territory").fill_null("WW"),
            pl.col("amount").cast(pl.Decimal(38, 2)),
            pl.col("quantity").fill_null(0).cast(pl.Int64),
        )
        .sort("contract", "reporting_period", "source", "isrc", "territory", "usage_type")
    )


def iter_statements(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    run_id: int,
    payee_ids: list[int] | None = None,
) -> Iterator[Statement]:
    """Every statement of a run (or of some payees), in payee then currency order, each
    checked to add up. The run's detail is derived once for all of them."""
    past = open_run(factory, data_dir, run_id)
    # One short read of the store (SQLite sessions take the write lock: never nest them).
    with factory() as session:
        run = session.get(RoyaltyRun, run_id)
        assert run is not None  # open_run checked
        org = session.get(Organisation, run.org_id)
        assert org is not None
        query = sa.select(StatementSummary).where(StatementSummary.run_id == run_id)
        if payee_ids is not None:
            query = query.where(StatementSummary.payee_id.in_(payee_ids))
        summaries = session.scalars(
            query.order_by(StatementSummary.payee_id, StatementSummary.currency)
        ).all()
        if not summaries:
            raise StatementError(
                "statement_missing",
                f"run {run_id} ({run.period} v{run.version}) has no statement"
                + ("" if payee_ids is None else f" for payee(s) {payee_ids}"),
            )
        wanted = sorted({s.payee_id for s in summaries})
        payees = {
            p.id: p for p in session.scalars(sa.select(Payee).where(Payee.id.in_(wanted))).all()
        }
        histories = _histories(session, run, wanted)
        earlier = _earlier_invoices(session, run, wanted)
        frozen = past.folder / "context"
        if (frozen / "releases.parquet").exists():
            releases = pl.read_parquet(frozen / "releases.parquet")
        else:  # a run recorded before statement context was frozen with it
            releases = pl.DataFrame(
                session.execute(
                    sa.select(Release.id, Release.upc, Release.title).where(
                        Release.org_id == run.org_id
                    )
                ).all(),
                schema={"release_id": pl.Int64, "upc": pl.String, "release_title": pl.String},
                orient="row",
            )
        if (frozen / "label.parquet").exists():
            row = pl.read_parquet(frozen / "label.parquet").row(0, named=True)
            label = Party(row["name"], row["address"], row["vat_number"])
        else:
            label = Party(org.legal_name or org.name, org.address, org.vat_number)
        # Approval makes the figures final: a statement is the same document whether its run
        # is approved or locked (so publishing at approval and again after lock agrees).
        issued = run.approved_at or run.created_at
        if issued.tzinfo is None:  # SQLite hands back naive UTC
            issued = issued.replace(tzinfo=dt.UTC)
        info = _RunInfo(
            run.id,
            run.org_id,
            org.slug,
            label,
            run.period,
            run.version,
            run.period_start,
            run.period_end,
            statement_status(run.status),
            issued,
        )
        session.expunge_all()
    detail = _detail_frame(
        run_detail(factory, data_dir, run_id=run_id, payee_ids=wanted), past.folder, releases
    )
    ledger = pl.read_parquet(past.folder / "outputs" / "ledger.parquet").filter(
        pl.col("payee_id").is_in(wanted)
    )
    by_payee = {k[0]: g for k, g in detail.partition_by("payee_id", as_dict=True).items()}
    facts = _payee_facts(past.folder, payees)
    currencies = _statement_currencies(past.folder, payees)
    last_month = past.period.months[-1]
    empty = detail.clear()
    for summary in summaries:
        payee = facts[summary.payee_id]
        lines = by_payee.get(summary.payee_id, empty).filter(pl.col("currency") == summary.currency)
        figures = {f: _d(getattr(summary, f)) for f in SUMMARY_FIELDS}
        mine = ledger.filter(
            (pl.col("payee_id") == summary.payee_id) & (pl.col("currency") == summary.currency)
        ).sort("reference")
        figures["reserves_outstanding"] = _d(
            sum(mine["reserves_outstanding"].to_list(), Decimal(0))
        )
        invoice, refused = _invoice(
            payee,
            info.org_slug,
            info.period,
            info.version,
            info.issued,
            summary.currency,
            figures,
            _to_gbp(past.folder, summary.currency, last_month),
        )
        previous = earlier.get((payee.id, summary.currency))
        credit = None if previous is None else _credit_note(previous, info.issued)
        if invoice is not None and credit is not None:
            invoice = replace(invoice, credit_note=credit.number)
        conversion, missing = _conversion(
            past.folder, summary.currency, currencies.get(payee.id), past.period.months, figures
        )
        statement = Statement(
            statement_id=summary.id,
            org_id=info.org_id,
            org_slug=info.org_slug,
            label=info.label,
            payee_id=payee.id,
            payee=Party(payee.name, payee.address, payee.vat_number),
            run_id=info.run_id,
            version=info.version,
            period=info.period,
            period_start=info.period_start,
            period_end=info.period_end,
            run_status=info.status,
            issued=info.issued,
            currency=summary.currency,
            figures=figures,
            contracts=[
                {
                    "reference": r["reference"],
                    "status": r["status"],
                    "status_text": status_words(r["status"]),
                    "pool": _pool_name(r.get("pool")),
                    "pooled_with": _pooled_with(mine, r),
                    **{f: _d(r[f]) for f in FIGURES},
                    **{f: _d(r.get(f)) for f in POOL_FIGURES},
                }
                for r in mine.iter_rows(named=True)
            ],
            by_source=_breakdown(lines, "source"),
            by_territory=_breakdown(lines, "territory"),
            by_usage=_breakdown(lines, "usage_type"),
            top_tracks=_breakdown(lines, "isrc", "track_title")[:TOP_TRACKS],
            history=histories.get((payee.id, summary.currency), []),
            lines=lines.select(list(DETAIL_COLUMNS)),
            invoice=invoice,
            invoice_refused=refused,
            conversion=conversion,
            conversion_missing=missing,
            credit_note=credit,
        )
        statement.notes.extend(pool_notes(statement.contracts))
        statement.notes.extend(conversion_notes(statement))
        if credit is not None:
            statement.notes.append(
                f"Corrected statement: self-billing invoice {credit.original} of "
                f"{credit.original_date.isoformat()} is cancelled by credit note {credit.number}"
                + (f"; this statement's invoice {invoice.number} replaces it." if invoice else ".")
            )
        statement.check()
        yield statement


def _statement_currencies(folder: Path, live: dict[int, Payee]) -> dict[int, str]:
    """Each payee's statement currency as the run froze it (its snapshot), else the store's."""
    frozen = folder / "snapshot" / "payees.parquet"
    if frozen.exists():
        frame = pl.read_parquet(frozen)
        if "statement_currency" in frame.columns:
            return {
                r["payee_id"]: r["statement_currency"]
                for r in frame.iter_rows(named=True)
                if r["statement_currency"]
            }
    return {p.id: p.statement_currency for p in live.values() if p.statement_currency}


def _conversion(
    folder: Path,
    currency: str,
    target: str | None,
    months: Sequence[str],
    figures: dict[str, Decimal],
) -> tuple[Conversion | None, str | None]:
    """The figures in the payee's statement currency ``target`` at the rate the run recorded
    for the period's last month (or, without one, the latest month of the period it has a
    rate for); (None, why) when it recorded none; (None, None) when the statement is already
    in ``target``."""
    if not target or target == currency:
        return None, None
    from royalty_engine.fx import inverse_rate

    fx = pl.read_parquet(folder / "snapshot" / "fx.parquet")
    found: dict[tuple[str, str, str], tuple[Decimal, str]] = {
        (r["base"], r["quote"], r["period"]): (Decimal(str(r["rate"])), r["source"] or "")
        for r in fx.iter_rows(named=True)
        if r["rate"]
    }
    for month in reversed(months):
        direct = found.get((currency, target, month))
        inverse = found.get((target, currency, month))
        if direct is not None:
            rate, source = direct[0], direct[1]
        elif inverse is not None:
            rate = inverse_rate(inverse[0]) or Decimal(0)
            source = f"{inverse[1]}, inverse of {target}/{currency} {inverse[0].normalize():f}"
        else:
            continue
        shown = converted_figures(figures, rate)
        return Conversion(target, rate, month, source or "the run's rates", shown), None
    return None, (
        f"fx_missing: the run recorded no {currency}/{target} rate for {months[0]} to "
        f"{months[-1]}: the figures are shown in {currency} only"
    )


def converted_figures(figures: dict[str, Decimal], rate: Decimal) -> dict[str, Decimal]:
    """Every figure at ``rate``, each rounded once (``converted``), except that the terms of
    the closing balance's sum (the non-zero ``SIGNED`` figures) are allocated by the largest
    remainder rule (``allocate``) so that they add up to the converted closing balance less
    the converted opening balance: the formula holds to the cent in the other currency too,
    and a statement settled to 0.00 stays 0.00 (each term within a cent of its own rounding)."""
    shown = {k: converted(v, rate) for k, v in figures.items()}
    terms = [k for k in SIGNED if figures[k]]
    parts = allocate(
        shown["closing"] - shown["opening"], [SIGNED[k] * figures[k] * rate for k in terms]
    )
    for key, part in zip(terms, parts, strict=True):
        shown[key] = SIGNED[key] * part
    return shown


def conversion_notes(s: Statement) -> list[str]:
    """What a statement in another currency says about the rate."""
    c = s.conversion
    if c is None:
        if not s.conversion_missing:
            return []
        why = s.conversion_missing.partition(": ")[2]
        return [why[:1].upper() + why[1:] + "."]
    return [
        f"Statement currency {c.currency}: the figures are converted at 1 {s.currency} = "
        f"{c.rate_text} {c.currency}, the run's rate for {c.month} ({c.source}), rounded to "
        f"the cent so that they add up. The balance is kept in {s.currency}: payable "
        f"{format_amount(c.figures['payable'], c.currency)} "
        f"({format_amount(s.figures['payable'], s.currency)})."
    ]


@dataclass(frozen=True)
class _EarlierInvoice:
    statement_id: int
    version: int
    invoice: Invoice


def _earlier_invoices(
    session: Session, run: RoyaltyRun, payee_ids: list[int]
) -> dict[tuple[int, str], _EarlierInvoice]:
    """Per payee and currency: the self-billing invoice of the version of this period that
    this run corrects (the latest earlier version that was approved), if it had one."""
    earlier = session.scalars(
        sa.select(RoyaltyRun)
        .where(
            RoyaltyRun.org_id == run.org_id,
            RoyaltyRun.period == run.period,
            RoyaltyRun.version < run.version,
            RoyaltyRun.approved_at.is_not(None),
        )
        .order_by(RoyaltyRun.version.desc())
        .limit(1)
    ).first()
    if earlier is None:
        return {}
    folder = Path(earlier.output_dir)
    live = {p.id: p for p in session.scalars(sa.select(Payee).where(Payee.id.in_(payee_ids))).all()}
    facts = _payee_facts(folder, live)
    issued = earlier.approved_at or earlier.created_at
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=dt.UTC)
    org = session.get(Organisation, run.org_id)
    assert org is not None
    last_month = parse_period(earlier.period).months[-1]
    out: dict[tuple[int, str], _EarlierInvoice] = {}
    for summary in session.scalars(
        sa.select(StatementSummary).where(
            StatementSummary.run_id == earlier.id, StatementSummary.payee_id.in_(payee_ids)
        )
    ):
        payee = facts.get(summary.payee_id)
        if payee is None:
            continue
        figures = {f: _d(getattr(summary, f)) for f in SUMMARY_FIELDS}
        invoice, _ = _invoice(
            payee,
            org.slug,
            earlier.period,
            earlier.version,
            issued,
            summary.currency,
            figures,
            _to_gbp(folder, summary.currency, last_month),
        )
        if invoice is not None:
            out[(summary.payee_id, summary.currency)] = _EarlierInvoice(
                summary.id, earlier.version, invoice
            )
    return out


def _credit_note(previous: _EarlierInvoice, issued: dt.datetime) -> CreditNote:
    """The credit note cancelling ``previous`` in full, dated with the re-issued statement."""
    inv = previous.invoice
    return CreditNote(
        number="CN-" + inv.number.removeprefix("SB-"),
        date=issued.date(),
        original=inv.number,
        original_date=inv.date,
        statement_id=previous.statement_id,
        version=previous.version,
        net=-inv.net,
        vat_rate=inv.vat_rate,
        vat=-inv.vat,
        gross=-inv.gross,
        withheld=-inv.withheld,
        to_pay=-inv.to_pay,
        vat_gbp=None if inv.vat_gbp is None else -inv.vat_gbp,
        gbp_rate=inv.gbp_rate,
    )


def _pooled_with(ledger: pl.DataFrame, row: dict[str, Any]) -> list[str]:
    """The other contracts of ``row``'s cross-collateralised pool (references), if any."""
    pool = row.get("pool")
    if not _pool_name(pool):
        return []
    return sorted(
        r
        for r in ledger.filter(pl.col("pool") == pool)["reference"].to_list()
        if r != row["reference"]
    )


def _pool_name(pool: str | None) -> str | None:
    """A cross-collateral group's name from the ledger's pool key (``<payee>:group:<name>``);
    None for a contract that is a pool of its own (``<payee>:contract:<id>``)."""
    if not pool or ":group:" not in pool:
        return None
    return pool.split(":group:", 1)[1]


def pool_notes(contracts: list[dict[str, Any]]) -> list[str]:
    """One sentence per cross-collateralised pool: its contracts and every movement between
    them (what recouped what, what was moved when it was paid)."""
    pools: dict[str, list[dict[str, Any]]] = {}
    for c in contracts:
        if c.get("pool"):
            pools.setdefault(c["pool"], []).append(c)
    notes = []
    for name, members in sorted(pools.items()):
        refs = ", ".join(c["reference"] for c in members)
        parts = [
            f"Cross-collateralised pool {name}: contracts {refs} are settled as one account "
            "(a surplus on one recoups another)."
        ]
        took = [c for c in members if c["recouped_from_pool"]]
        gave = [c for c in members if c["recouped_for_pool"]]
        if took:
            parts.append(
                "Recouped from the pool: "
                + ", ".join(f"{c['reference']} {c['recouped_from_pool']}" for c in took)
                + " (by the earnings of "
                + ", ".join(f"{c['reference']} {c['recouped_for_pool']}" for c in gave)
                + ")."
            )
        moved = [c for c in members if c["pool_transfer"]]
        if moved:
            parts.append(
                "Moved within the pool when it was paid: "
                + ", ".join(f"{c['reference']} {c['pool_transfer']:+}" for c in moved)
                + " (adds up to 0.00)."
            )
        notes.append(" ".join(parts))
    return notes


def load_statement(
    factory: sessionmaker[Session], data_dir: Path, *, org_id: int, statement_id: int
) -> Statement:
    """One statement by its id, only within ``org_id`` (a missing or foreign id is the same
    ``statement_missing``)."""
    with factory() as session:
        summary = session.get(StatementSummary, statement_id)
        if summary is None or summary.org_id != org_id:
            raise StatementError("statement_missing", f"no statement {statement_id}")
        run_id, payee_id, currency = summary.run_id, summary.payee_id, summary.currency
    for statement in iter_statements(factory, data_dir, run_id=run_id, payee_ids=[payee_id]):
        if statement.currency == currency:
            return statement
    raise StatementError("statement_missing", f"no statement {statement_id}")  # pragma: no cover
