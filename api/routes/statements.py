"""``/v1/statements``: payees' statements of approved runs, as JSON and as files, and
``/v1/payees/{id}/balance-history``: every movement of a payee's contract balances.

Payee keys see only their own payee's statements of approved or locked runs; anything else is
404, never 403, so statement ids do not leak. Admin and finance keys may preview statements of
runs not approved yet (``include_unapproved=true`` on the list; by id without it).

Getting or downloading one statement reads the run's files (``pipelines.statements``), which
opens its own short store sessions: those routes authenticate in a session of their own that
is closed before the statement is loaded (SQLite allows one writer-locked session at a time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from api.deps import (
    WRITERS,
    DecimalRoute,
    PathId,
    Principal,
    PrincipalDep,
    SessionDep,
    Unauthorized,
    api_key_header,
    bearer,
)
from api.queries import DbId, Page, paginate
from api.routes.crud import page_model
from pipelines.layout import DataDir
from pipelines.statements import (
    FORMATS,
    MEDIA_TYPES,
    render,
    render_credit_note,
    render_invoice,
)
from pipelines.statements.data import Statement, StatementError, load_statement
from pipelines.statements.export import MANIFEST
from pipelines.statements.tabular import statement_dict
from schemas.errors import FieldError, Forbidden, StoreError
from schemas.statement_figures import FIGURES, SUMMARY_FIELDS
from schemas.store.keys import verify_key
from schemas.store.models import Contract, Payee, Role
from schemas.store.runs import ContractBalance, RoyaltyRun, RunStatus, StatementSummary

log = logging.getLogger(__name__)
router = APIRouter(route_class=DecimalRoute, tags=["statements"])

CENT = Decimal("0.01")
VISIBLE = (RunStatus.APPROVED, RunStatus.LOCKED)
DownloadFormat = Literal["pdf", "xlsx", "csv", "json", "invoice", "credit_note"]
DOWNLOADS: tuple[str, ...] = get_args(DownloadFormat)
assert set(DOWNLOADS) == {*FORMATS, "invoice", "credit_note"}, (
    "keep DownloadFormat in step with FORMATS"
)
PROBLEM_TYPE = "https://tunemantra.org/problems/statement"
PAYMENTS_NOTE = (
    "TuneMantra keeps no payments ledger: 'payable' of each period is the payment due for it "
    "(paid outside TuneMantra)."
)


def _cents(value: Decimal | None) -> str:
    return str(Decimal(0) if value is None else Decimal(value).quantize(CENT))


# --- errors ----------------------------------------------------------------------------------
class StatementNotFound(StoreError):
    def __init__(self, detail: str, code: str = "statement_missing") -> None:
        super().__init__(
            detail=detail,
            errors=[FieldError("statement_id", detail, code)],
            status=404,
            title="Not found",
            type=PROBLEM_TYPE,
        )


def statement_problem(statement_id: int, err: StatementError) -> StoreError:
    """A ``StatementError`` as a problem: a missing statement is 404, anything else (a run
    whose files are gone, detail that does not add up) 409, both with the error's code."""
    if err.code == "statement_missing":
        return StatementNotFound(f"no statement {statement_id} for this organisation")
    return StoreError(
        detail=f"statement {statement_id} cannot be produced: {err.message}",
        errors=[FieldError("statement_id", err.message, err.code)],
        status=409,
        title="Statement unavailable",
        type=PROBLEM_TYPE,
    )


# --- who is asking ---------------------------------------------------------------------------
def may_preview(principal: Principal) -> bool:
    """Admin and finance keys may see statements of runs that are not approved yet."""
    return principal.role in WRITERS


def authenticate(factory: sessionmaker[Session], plain: str | None, secret_key: str) -> Principal:
    """The caller, from a session of its own that is closed again before returning."""
    if not plain:
        raise Unauthorized()
    with factory() as session:
        row = verify_key(session, plain, secret_key=secret_key)
        if row is None:
            raise Unauthorized()
        return Principal(row.org_id, row.role, row.id, row.prefix, row.payee_id)


def short_principal(
    request: Request,
    api_key: Annotated[str | None, Depends(api_key_header)],
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    plain = api_key or (token.credentials if token else None)
    return authenticate(request.app.state.read_factory, plain, request.app.state.secret_key)


ShortPrincipalDep = Annotated[Principal, Depends(short_principal)]


# --- finding statements ----------------------------------------------------------------------
@dataclass(frozen=True)
class StatementRef:
    """Where one statement is, read in a short session before anything heavy happens."""

    statement_id: int
    org_id: int
    run_id: int
    period: str
    version: int
    run_status: str
    payee_id: int
    payee_name: str
    currency: str


def find_statement(
    factory: sessionmaker[Session], principal: Principal, statement_id: int
) -> StatementRef:
    """The statement if this caller may see it, else 404: another organisation's, another
    payee's (for payee keys) and a not-yet-approved run's (except for admin/finance keys) are
    all indistinguishable from a statement that does not exist."""
    with factory() as session:
        row = session.execute(
            sa.select(StatementSummary, RoyaltyRun, Payee.name)
            .join(RoyaltyRun, RoyaltyRun.id == StatementSummary.run_id)
            .join(Payee, Payee.id == StatementSummary.payee_id)
            .where(
                StatementSummary.id == statement_id,
                StatementSummary.org_id == principal.org_id,
            )
        ).one_or_none()
    visible = row is not None and (row[1].status in VISIBLE or may_preview(principal))
    if row is None or not visible or not _payee_may_see(principal, row[0].payee_id):
        raise StatementNotFound(f"no statement {statement_id} for this organisation")
    summary, run, payee_name = row
    return StatementRef(
        summary.id,
        summary.org_id,
        run.id,
        run.period,
        run.version,
        str(run.status),
        summary.payee_id,
        payee_name,
        summary.currency,
    )


def _payee_may_see(principal: Principal, payee_id: int) -> bool:
    return principal.role is not Role.PAYEE or principal.payee_id == payee_id


def load(factory: sessionmaker[Session], data_dir: Path, ref: StatementRef) -> Statement:
    try:
        return load_statement(factory, data_dir, org_id=ref.org_id, statement_id=ref.statement_id)
    except StatementError as err:
        raise statement_problem(ref.statement_id, err) from err


# --- files -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatementFile:
    filename: str
    media_type: str
    body: bytes
    sha256: str
    exported: bool  # served from the run's export folder (else rendered now)


def _from_export(data_dir: Path, ref: StatementRef, kind: str, fmt: str) -> StatementFile | None:
    """The file from the run's export folder, if it is there and its SHA-256 matches the
    folder's manifest (a file that does not match is never served)."""
    folder = DataDir(data_dir).statements(ref.org_id, ref.period, ref.version)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if manifest.get("run_id") != ref.run_id:
        return None
    for entry in manifest.get("files", []):
        if (entry.get("statement_id"), entry.get("kind"), entry.get("format")) != (
            ref.statement_id,
            kind,
            fmt,
        ):
            continue
        path = (folder / str(entry["path"])).resolve()
        if not path.is_relative_to(folder.resolve()):
            return None
        try:
            body = path.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(body).hexdigest()
        if digest != entry.get("sha256"):
            log.warning("statement file %s does not match its manifest; rendering anew", path)
            return None
        return StatementFile(path.name, MEDIA_TYPES[fmt], body, digest, exported=True)
    return None


def statement_file(
    factory: sessionmaker[Session],
    data_dir: Path,
    ref: StatementRef,
    fmt: str,
    statement: Statement | None = None,
) -> StatementFile:
    """One statement as ``fmt`` (one of ``FORMATS``, ``invoice`` or ``credit_note``): the
    exported file when the run was exported, else rendered now (CPU work: call it from a
    worker thread)."""
    kind, file_fmt = (fmt, "pdf") if fmt in ("invoice", "credit_note") else ("statement", fmt)
    found = _from_export(data_dir, ref, kind, file_fmt)
    if found is not None:
        return found
    if statement is None:
        statement = load(factory, data_dir, ref)
    if kind == "invoice":
        body = render_invoice(statement)
        if body is None:
            reason = statement.invoice_refused or "the payee has no self-billing agreement"
            raise StatementNotFound(
                f"statement {ref.statement_id} has no self-billing invoice: {reason}",
                code="invoice_missing",
            )
        name = f"{statement.invoice_stem}.pdf"
    elif kind == "credit_note":
        body = render_credit_note(statement)
        if body is None:
            raise StatementNotFound(
                f"statement {ref.statement_id} has no credit note: only a correction that "
                "re-issues a self-billing invoice credits the earlier one",
                code="credit_note_missing",
            )
        name = f"{statement.credit_note_stem}.pdf"
    else:
        body = render(statement, file_fmt)
        name = f"{statement.file_stem}.{file_fmt}"
    digest = hashlib.sha256(body).hexdigest()
    return StatementFile(name, MEDIA_TYPES[file_fmt], body, digest, exported=False)


def file_response(request: Request, file: StatementFile) -> Response:
    etag = f'"{file.sha256}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": (
            f"attachment; filename=\"{file.filename}\"; filename*=UTF-8''{quote(file.filename)}"
        ),
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(file.body, media_type=file.media_type, headers=headers)


def download_links(root: str, statement_id: int, invoice: bool) -> dict[str, str]:
    formats: Sequence[str] = (*FORMATS, "invoice") if invoice else FORMATS
    return {f: f"{root}/v1/statements/{statement_id}/download?format={f}" for f in formats}


# --- lists and history -----------------------------------------------------------------------
class StatementFilter(Page):
    period: str | None = Field(None, max_length=7, description="e.g. 2026-H1, 2026-Q1, 2026-01")
    payee_id: DbId | None = None
    run_id: DbId | None = None
    currency: str | None = Field(None, min_length=3, max_length=3)
    include_unapproved: bool = Field(
        False,
        description="admin and finance keys only: also statements of runs not approved yet "
        "(calculated previews, superseded versions)",
    )


class StatementOut(BaseModel):
    id: int = Field(description="the statement id")
    payee_id: int
    payee_name: str
    period: str
    run_id: int
    run_version: int
    run_status: RunStatus
    currency: str
    contracts: int
    figures: dict[str, str] = Field(description="opening ... carried_forward, decimal strings")
    links: dict[str, str] = Field(description="the statement and its downloads")


def list_statements(
    session: Session, principal: Principal, q: StatementFilter
) -> tuple[list[StatementOut], str | None]:
    if q.include_unapproved and not may_preview(principal):
        raise Forbidden(
            f"include_unapproved needs an admin or finance key, not {principal.role.value}"
        )
    stmt = (
        sa.select(StatementSummary)
        .join(RoyaltyRun, RoyaltyRun.id == StatementSummary.run_id)
        .where(StatementSummary.org_id == principal.org_id)
    )
    if not q.include_unapproved:
        stmt = stmt.where(RoyaltyRun.status.in_(VISIBLE))
    if principal.role is Role.PAYEE:
        stmt = stmt.where(StatementSummary.payee_id == principal.payee_id)
    if q.period is not None:
        stmt = stmt.where(StatementSummary.period == q.period)
    if q.payee_id is not None:
        stmt = stmt.where(StatementSummary.payee_id == q.payee_id)
    if q.run_id is not None:
        stmt = stmt.where(StatementSummary.run_id == q.run_id)
    if q.currency is not None:
        stmt = stmt.where(StatementSummary.currency == q.currency.upper())
    rows, cursor = paginate(session, stmt, StatementSummary, q)
    runs = {
        r.id: r
        for r in session.scalars(
            sa.select(RoyaltyRun).where(RoyaltyRun.id.in_({s.run_id for s in rows}))
        )
    }
    names = dict(
        session.execute(
            sa.select(Payee.id, Payee.name).where(Payee.id.in_({s.payee_id for s in rows}))
        ).all()
    )
    items = [
        StatementOut(
            id=s.id,
            payee_id=s.payee_id,
            payee_name=names[s.payee_id],
            period=s.period,
            run_id=s.run_id,
            run_version=runs[s.run_id].version,
            run_status=runs[s.run_id].status,
            currency=s.currency,
            contracts=s.contracts,
            figures={f: _cents(getattr(s, f)) for f in SUMMARY_FIELDS},
            links={"self": f"/v1/statements/{s.id}"} | download_links("", s.id, invoice=False),
        )
        for s in rows
    ]
    return items, cursor


class BalanceMovement(BaseModel):
    period: str
    period_end: dt.date
    run_id: int
    run_version: int
    run_status: RunStatus
    opening: str
    earnings: str
    advances: str
    costs: str
    recouped: str
    reserve_held: str
    reserve_released: str
    tax: str
    payable: str = Field(description="the payment due for the period")
    closing: str
    carried_forward: str
    reserves_outstanding: str
    status: str = Field(description="the contract's state after the period (recouped, ...)")


class ContractHistory(BaseModel):
    contract_id: int
    reference: str
    currency: str
    periods: list[BalanceMovement] = Field(description="oldest period first")


class BalanceHistory(BaseModel):
    payee_id: int
    payee_name: str
    payments_note: str
    contracts: list[ContractHistory]


def balance_history(session: Session, principal: Principal, payee_id: int) -> BalanceHistory:
    """Every contract balance movement of a payee, one row per period: the period's approved
    or locked run, its latest version."""
    payee = session.get(Payee, payee_id)
    if payee is None or payee.org_id != principal.org_id or not _payee_may_see(principal, payee_id):
        raise StoreError(
            detail=f"no payee {payee_id} for this organisation",
            errors=[FieldError("payee_id", f"no payee {payee_id}", "not_found")],
            status=404,
            title="Not found",
        )
    rows = session.execute(
        sa.select(ContractBalance, RoyaltyRun, Contract.reference)
        .join(RoyaltyRun, RoyaltyRun.id == ContractBalance.run_id)
        .join(Contract, Contract.id == ContractBalance.contract_id)
        .where(
            ContractBalance.org_id == principal.org_id,
            ContractBalance.payee_id == payee_id,
            RoyaltyRun.status.in_(VISIBLE),
        )
        .order_by(RoyaltyRun.period_end, RoyaltyRun.period, RoyaltyRun.version)
    ).all()
    latest: dict[str, int] = {}  # period -> newest visible version
    for _, run, _ in rows:
        latest[run.period] = max(latest.get(run.period, 0), run.version)
    contracts: dict[int, ContractHistory] = {}
    for bal, run, reference in rows:
        if run.version != latest[run.period]:
            continue
        history = contracts.get(bal.contract_id)
        if history is None:
            history = contracts[bal.contract_id] = ContractHistory(
                contract_id=bal.contract_id, reference=reference, currency=bal.currency, periods=[]
            )
        history.periods.append(
            BalanceMovement(
                period=run.period,
                period_end=run.period_end,
                run_id=run.id,
                run_version=run.version,
                run_status=run.status,
                status=bal.status,
                **{f: _cents(getattr(bal, f)) for f in FIGURES},
            )
        )
    return BalanceHistory(
        payee_id=payee.id,
        payee_name=payee.name,
        payments_note=PAYMENTS_NOTE,
        contracts=sorted(contracts.values(), key=lambda c: (c.reference, c.contract_id)),
    )


# --- routes ----------------------------------------------------------------------------------
@router.get(
    "/v1/statements",
    response_model=page_model(StatementOut),
    summary="Statements of approved and locked runs",
)
def get_statements(
    session: SessionDep, principal: PrincipalDep, q: Annotated[StatementFilter, Query()]
) -> Any:
    """Payee keys see their own statements only; figures are decimal strings in the
    statement's currency."""
    items, cursor = list_statements(session, principal, q)
    return {"items": items, "next_cursor": cursor}


@router.get("/v1/statements/{statement_id}", summary="One statement: figures and breakdowns")
def get_statement(statement_id: PathId, request: Request, principal: ShortPrincipalDep) -> Any:
    """The statement as its JSON file has it, without the line-level detail (download
    ``format=json`` or ``csv`` for that), plus links to every download."""
    app = request.app
    ref = find_statement(app.state.read_factory, principal, statement_id)
    statement = load(app.state.read_factory, app.state.data_dir, ref)
    body = statement_dict(statement, with_lines=False)
    root = request.scope.get("root_path", "")
    body["links"] = download_links(root, statement_id, invoice=statement.invoice is not None)
    return body


@router.get(
    "/v1/statements/{statement_id}/download",
    summary="A statement as PDF, XLSX, CSV or JSON, or its self-billing invoice",
    response_class=Response,
    responses={
        200: {"content": {m.split(";")[0]: {} for m in MEDIA_TYPES.values()}},
        304: {"description": "If-None-Match matched the ETag (the file's SHA-256)"},
    },
)
def download_statement(
    statement_id: PathId,
    request: Request,
    principal: ShortPrincipalDep,
    format: Annotated[
        DownloadFormat,
        Query(
            description="pdf, xlsx, csv, json, invoice or credit_note (a correction's "
            "credit of the earlier invoice)"
        ),
    ],
) -> Response:
    """Served from the run's export folder when it was exported (its SHA-256 checked against
    the folder's manifest), else rendered now. ``ETag`` is the file's SHA-256."""
    app = request.app
    ref = find_statement(app.state.read_factory, principal, statement_id)
    file = statement_file(app.state.read_factory, app.state.data_dir, ref, format)
    return file_response(request, file)


@router.get(
    "/v1/payees/{payee_id}/balance-history",
    response_model=BalanceHistory,
    summary="Every movement of a payee's contract balances, period by period",
)
def get_balance_history(payee_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
    """Per contract and period (approved or locked runs, the latest version of each period):
    opening, earnings, advances, costs, recouped, reserves held and released, tax, payable,
    closing, carried forward and reserves outstanding. There is no payments table: the
    period's ``payable`` is the payment due for it."""
    return balance_history(session, principal, payee_id)
