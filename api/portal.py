"""The payee portal: server-rendered pages (Jinja2, no JavaScript needed) where a payee signs
in with the API key the label gave them, reads their statements and downloads the files.

Only payee keys may sign in: the portal shows one payee's money (its balance chart is that
payee's); admin, finance and analyst keys use the API (``/v1/statements``) instead.

Session: signing in sets the ``tm_portal`` cookie (HttpOnly, SameSite=Strict, Secure on https,
eight hours) holding ``<key id>.<expiry>.<HMAC>``: the HMAC-SHA256 under the server's secret
key of the key id, expiry, the key's stored hash and its portal epoch. The plain key is never
stored; revoking the key ends its sessions, and signing out moves the key's epoch on, which
ends every session of that key on the server (a copy of the cookie replayed later is refused).
CSRF: the cookie is SameSite=Strict, so no other site's page can send it, and the only
state-changing request (sign-out) is a POST.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.deps import PathId, Principal
from api.routes.statements import (
    DOWNLOADS,
    FORMATS,
    BalanceHistory,
    BalanceMovement,
    StatementFilter,
    StatementOut,
    StatementRef,
    balance_history,
    file_response,
    find_statement,
    list_statements,
    load,
    statement_file,
)
from pipelines.layout import DataDir
from pipelines.statements.data import Statement
from pipelines.statements.export import MANIFEST
from schemas.errors import StoreError
from schemas.money import format_amount
from schemas.statement_figures import FIGURE_LABELS, FIGURES, SIGNED, TABLE, status_words
from schemas.store.keys import verify_key
from schemas.store.models import ApiKey, Payee, Role

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
COOKIE = "tm_portal"
SESSION_SECONDS = 8 * 3600
FORMAT_LABELS = {
    "pdf": "PDF",
    "xlsx": "Excel (XLSX)",
    "csv": "CSV (line detail)",
    "json": "JSON",
    "invoice": "Self-billing invoice (PDF)",
    "credit_note": "Credit note for the earlier invoice (PDF)",
}

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)


def _count(value: object) -> str:
    """A quantity with thousands separators (``227,394``); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


# Every amount on a page goes through schemas.money.format_amount: ``{{ x|amount }}``
# (``{{ x|amount("GBP") }}`` with the currency code); quantities through ``count``.
templates.env.filters["amount"] = format_amount
templates.env.filters["count"] = _count
router = APIRouter(prefix="/portal", include_in_schema=False)


# --- the session cookie ----------------------------------------------------------------------
def _mac(secret_key: str, row: ApiKey, expires: int) -> str:
    msg = f"tm-portal|{row.id}|{expires}|{row.key_hash}|{row.portal_epoch}".encode()
    return hmac.new(secret_key.encode(), msg, hashlib.sha256).hexdigest()


def session_token(secret_key: str, row: ApiKey, now: dt.datetime) -> str:
    expires = int(now.timestamp()) + SESSION_SECONDS
    return f"{row.id}.{expires}.{_mac(secret_key, row, expires)}"


def _principal(row: ApiKey) -> Principal:
    return Principal(row.org_id, row.role, row.id, row.prefix, row.payee_id)


def _session_key(session: Session, request: Request) -> ApiKey | None:
    """The key row of the request's session cookie, or None (no cookie, forged, expired,
    signed out, or the key was revoked)."""
    token = request.cookies.get(COOKIE, "")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    key_id, expires = int(parts[0]), int(parts[1])
    if expires < dt.datetime.now(dt.UTC).timestamp():
        return None
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None or row.role is not Role.PAYEE:
        return None
    if not hmac.compare_digest(_mac(request.app.state.secret_key, row, expires), parts[2]):
        return None
    return row


def session_principal(request: Request) -> Principal | None:
    """The signed-in payee, or None (no cookie, forged, expired, signed out, or the key was
    revoked)."""
    factory: sessionmaker[Session] = request.app.state.read_factory
    with factory() as session:
        row = _session_key(session, request)
        return None if row is None else _principal(row)


def _sign_in_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "portal/sign_in.html", {"error": error, "title": "Sign in"}, status_code=status
    )


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=303)


# --- the balance history ---------------------------------------------------------------------
# Every movement of a period, in the order the balance is reached: (key, column head, sign in
# the sum that reaches the closing balance; "" = not a term of it), from the one table of
# statement figures, with the pool settlement (derived here) before the closing balance.
HISTORY_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    column
    for f in TABLE
    if f.summary
    for column in (
        *([("settlement", "Pool settlement", "+")] if f.key == "closing" else []),
        (f.key, f.label, f.sign),
    )
)
HISTORY_CAPTION = (
    "Closing = opening + earnings − advances − recoupable costs − reserves held "
    "+ reserves released − tax withheld − payable. Recouped is the part of the "
    "earnings that paid back advances and costs: it is already in those figures and is not "
    "subtracted again. Carried forward is the closing balance the next period opens with."
)
SETTLEMENT_NOTE = (
    " Pool settlement: contracts that are cross-collateralised are paid as one account, so "
    "when the pool is paid each contract closes at zero and the settlement moves balance "
    "between them (it adds up to zero over the pool)."
)


@dataclass(frozen=True)
class HistoryRow:
    period: str
    period_end: dt.date
    values: dict[str, Decimal]  # every HISTORY_COLUMNS key
    status: str | None  # the contract's state after the period (None on a total row)


@dataclass(frozen=True)
class HistoryTable:
    caption: str
    currency: str
    rows: list[HistoryRow]
    total: bool  # all the payee's contracts in this currency, summed

    @property
    def columns(self) -> list[tuple[str, str, str]]:
        """Every movement; the pool settlement only where it moved something."""
        shown = any(r.values["settlement"] for r in self.rows)
        return [c for c in HISTORY_COLUMNS if c[0] != "settlement" or shown]

    @property
    def note(self) -> str:
        return HISTORY_CAPTION + (
            SETTLEMENT_NOTE if len(self.columns) == len(HISTORY_COLUMNS) else ""
        )


def _movement_row(m: BalanceMovement) -> HistoryRow:
    values = {key: Decimal(getattr(m, key)) for key, _, _ in HISTORY_COLUMNS if key != "settlement"}
    reached = values["opening"] + sum(
        (sign * values[key] for key, sign in SIGNED.items()), Decimal(0)
    )
    values["settlement"] = values["closing"] - reached
    return HistoryRow(m.period, m.period_end, values, status_words(m.status) or None)


def _summed(rows: list[HistoryRow]) -> list[HistoryRow]:
    """One row per period: every movement added up over the rows of that period."""
    per: dict[tuple[dt.date, str], dict[str, Decimal]] = {}
    for row in rows:
        into = per.setdefault((row.period_end, row.period), dict.fromkeys(row.values, Decimal(0)))
        for key, value in row.values.items():
            into[key] += value
    return [HistoryRow(period, end, values, None) for (end, period), values in sorted(per.items())]


def history_tables(history: BalanceHistory) -> dict[str, list[HistoryTable]]:
    """Per currency: a table per contract (every movement, period by period) and, when the
    payee has several contracts in that currency, first a table of their sums (what the
    currency's chart plots)."""
    out: dict[str, list[HistoryTable]] = {}
    for contract in history.contracts:
        out.setdefault(contract.currency, []).append(
            HistoryTable(
                f"Contract {contract.reference} ({contract.currency}): balance by period",
                contract.currency,
                [_movement_row(m) for m in contract.periods],
                total=False,
            )
        )
    for currency, tables in out.items():
        if len(tables) > 1:
            summed = _summed([r for t in tables for r in t.rows])
            caption = f"All your contracts in {currency}, added up: balance by period"
            tables.insert(0, HistoryTable(caption, currency, summed, total=True))
    return dict(sorted(out.items()))


# --- the balance chart -----------------------------------------------------------------------
@dataclass(frozen=True)
class ChartPoint:
    period: str
    closing: Decimal
    x: float
    y: float


@dataclass(frozen=True)
class Chart:
    currency: str
    points: list[ChartPoint]
    zero_y: float
    top: Decimal
    bottom: Decimal
    width: int = 640
    height: int = 240
    pad: int = 48

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def _scale(value: Decimal, top: Decimal, span: Decimal) -> float:
    """The SVG y of ``value`` (top of the plot at ``top``)."""
    plot = Chart.height - 2 * Chart.pad
    return float(Chart.pad + (top - value) / span * plot)


def balance_chart(table: HistoryTable) -> Chart:
    """The closing balance per period of one currency's table (the sums over the payee's
    contracts in that currency, or its only contract): the chart plots exactly the table's
    Closing column. Coordinates are computed here so the page needs no JavaScript."""
    periods = [r.period for r in table.rows]
    values = [r.values["closing"] for r in table.rows]
    plot_width = Chart.width - 2 * Chart.pad
    top, bottom = max([*values, Decimal(0)]), min([*values, Decimal(0)])
    span = (top - bottom) or Decimal(1)
    step = plot_width / max(len(periods) - 1, 1)
    points = [
        ChartPoint(
            period,
            value,
            Chart.pad + (i * step if len(periods) > 1 else plot_width / 2),
            _scale(value, top, span),
        )
        for i, (period, value) in enumerate(zip(periods, values, strict=True))
    ]
    return Chart(table.currency, points, _scale(Decimal(0), top, span), top, bottom)


@dataclass(frozen=True)
class CurrencyHistory:
    currency: str
    chart: Chart
    tables: list[HistoryTable]  # the plotted table first


def currency_histories(history: BalanceHistory) -> list[CurrencyHistory]:
    """One chart per currency (never a sum across currencies), with the tables it comes from."""
    return [
        CurrencyHistory(currency, balance_chart(tables[0]), tables)
        for currency, tables in history_tables(history).items()
    ]


# --- which downloads a statement in the list has ----------------------------------------------
def manifest_invoices(data_dir: Path, org_id: int, item: StatementOut) -> set[int] | None:
    """Statement ids with an exported self-billing invoice, from the run's export manifest
    (the folder downloads are served from); None when the run was not exported here (no
    manifest, unreadable, or another run's)."""
    folder = DataDir(data_dir).statements(org_id, item.period, item.run_version)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("run_id") != item.run_id:
        return None
    files = manifest.get("files")
    return {
        entry["statement_id"]
        for entry in (files if isinstance(files, list) else [])
        if isinstance(entry, dict)
        and entry.get("kind") == "invoice"
        and isinstance(entry.get("statement_id"), int)
    }


def stored_invoices(session: Session, principal: Principal, items: list[StatementOut]) -> set[int]:
    """Statement ids that may have a self-billing invoice, from cheap store facts when the run
    was not exported: the payee agreed to self-billing and the statement has something payable
    (the loader may still refuse one, e.g. an expired agreement: its download then says why).
    No run file is read."""
    payee = session.get(Payee, principal.payee_id)
    if payee is None or not payee.self_billing_consent:
        return set()
    found = set()
    for item in items:
        try:
            payable = Decimal(item.figures["payable"])
        except (KeyError, ArithmeticError):  # one odd statement must not break the list
            log.warning("statement %s has no payable figure", item.id)
            continue
        if payable > 0:
            found.add(item.id)
    return found


# --- pages -----------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    if session_principal(request) is not None:
        return RedirectResponse("/portal/statements", status_code=303)
    return _sign_in_page(request, None, 200)


@router.post("/", response_class=HTMLResponse)
def sign_in(request: Request, api_key: Annotated[str, Form(max_length=200)] = "") -> Response:
    factory: sessionmaker[Session] = request.app.state.read_factory
    secret: str = request.app.state.secret_key
    with factory() as session:
        row = verify_key(session, api_key, secret_key=secret) if api_key.strip() else None
        if row is None:
            return _sign_in_page(
                request, "That key was not recognised. Check it and try again.", 401
            )
        if row.role is not Role.PAYEE:
            return _sign_in_page(
                request,
                "The portal is for payees. Admin, finance and analyst keys use the API.",
                403,
            )
        token = session_token(secret, row, dt.datetime.now(dt.UTC))
    response = RedirectResponse("/portal/statements", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Sign out: the key's portal epoch moves on, so this cookie (and any copy of it, or
    another session of the same key) is refused from now on; the browser drops it too."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session, session.begin():
        row = _session_key(session, request)
        if row is not None:
            session.info.update(actor=f"key:{row.prefix}", api_key_id=row.id)
            row.portal_epoch += 1
    response = _to_sign_in()
    response.delete_cookie(
        COOKIE,
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _statements_page(request: Request, principal: Principal) -> dict[str, Any]:
    """Everything the list page shows, from the store and the runs' export manifests only:
    no statement is loaded (that reads every line and re-hashes the run's files), so a run
    whose files are gone still lists its statements."""
    factory: sessionmaker[Session] = request.app.state.read_factory
    data_dir: Path = request.app.state.data_dir
    assert principal.payee_id is not None
    with factory() as session:
        items, _ = list_statements(session, principal, StatementFilter(limit=500))
        history = balance_history(session, principal, principal.payee_id)
        stored = stored_invoices(session, principal, items)
    exported: dict[int, set[int] | None] = {}  # run id -> its manifest's invoices
    rows = []
    for item in sorted(items, key=lambda s: (s.period, s.run_version, s.id), reverse=True):
        try:
            if item.run_id not in exported:
                exported[item.run_id] = manifest_invoices(data_dir, principal.org_id, item)
            invoices = exported[item.run_id]
            invoice = item.id in (stored if invoices is None else invoices)
        except Exception:  # one statement's trouble never breaks the list: no invoice link
            log.warning("statement %s: no invoice link", item.id, exc_info=True)
            invoice = False
        rows.append({"item": item, "formats": [*FORMATS, "invoice"] if invoice else list(FORMATS)})
    return {
        "payee_name": history.payee_name,
        "rows": rows,
        "history": history,
        "currencies": currency_histories(history),
        "title": "Your statements",
        "signed_in": True,
    }


def _formats(statement: Statement) -> list[str]:
    """The statement's downloads: every format, its self-billing invoice and, for a corrected
    statement, the credit note for the earlier invoice."""
    return [
        *FORMATS,
        *(["invoice"] if statement.invoice is not None else []),
        *(["credit_note"] if statement.credit_note is not None else []),
    ]


@router.get("/statements", response_class=HTMLResponse)
async def statements_page(request: Request) -> Response:
    principal = await run_in_threadpool(session_principal, request)
    if principal is None:
        return _to_sign_in()
    context = await run_in_threadpool(_statements_page, request, principal)
    context |= {"format_labels": FORMAT_LABELS, "figure_labels": FIGURE_LABELS}
    return templates.TemplateResponse(request, "portal/statements.html", context)


def _statement(request: Request, principal: Principal, statement_id: int) -> dict[str, Any]:
    factory: sessionmaker[Session] = request.app.state.read_factory
    ref = find_statement(factory, principal, statement_id)
    statement = load(factory, request.app.state.data_dir, ref)
    return {"ref": ref, "s": statement, "formats": _formats(statement)}


@router.get("/statements/{statement_id}", response_class=HTMLResponse)
async def statement_page(request: Request, statement_id: PathId) -> Response:
    principal = await run_in_threadpool(session_principal, request)
    if principal is None:
        return _to_sign_in()
    try:
        context = await run_in_threadpool(_statement, request, principal, statement_id)
    except StoreError as err:
        return _error_page(request, err)
    context |= {
        "figures": FIGURES,
        "figure_labels": FIGURE_LABELS,
        "format_labels": FORMAT_LABELS,
        "title": f"Statement {context['s'].period}",
        "signed_in": True,
    }
    return templates.TemplateResponse(request, "portal/statement.html", context)


def _download(request: Request, principal: Principal, statement_id: int, fmt: str) -> Response:
    factory: sessionmaker[Session] = request.app.state.read_factory
    ref: StatementRef = find_statement(factory, principal, statement_id)
    return file_response(request, statement_file(factory, request.app.state.data_dir, ref, fmt))


@router.get("/statements/{statement_id}/download/{fmt}")
async def download(request: Request, statement_id: PathId, fmt: str) -> Response:
    principal = await run_in_threadpool(session_principal, request)
    if principal is None:
        return _to_sign_in()
    if fmt not in DOWNLOADS:
        return _error_page(
            request,
            StoreError(
                detail=f"there is no {fmt!r} download; choose one of {', '.join(DOWNLOADS)}",
                status=404,
                title="Not found",
            ),
        )
    try:
        return await run_in_threadpool(_download, request, principal, statement_id, fmt)
    except StoreError as err:
        return _error_page(request, err)


# What a payee reads for each error: the API's detail is for programs ("1 validation
# error(s)"), so where it would not help a person the page says this instead.
ERROR_TEXT: dict[int, tuple[str, str | None]] = {
    401: ("Please sign in", "Your session has ended. Sign in again with your access key."),
    403: ("Not allowed", "Your access key does not open this page."),
    404: ("Not found", None),
    405: ("Not found", "There is no page at this address."),
    422: (
        "That address is not valid",
        "Part of the address is not what the portal expects (a statement number, for "
        "instance). Check the link, or go back to your statements.",
    ),
    500: (
        "Something went wrong",
        "The portal could not show this page and nothing was changed. Please try again "
        "later; if it keeps happening, tell your label.",
    ),
    503: (
        "Busy",
        "The service is busy right now and nothing was changed. Please try again in a few seconds.",
    ),
}
HTTP_PHRASES = {"Not Found", "Method Not Allowed", "Forbidden", "Unauthorized"}


def error_page(
    status: int, title: str, detail: str, headers: dict[str, str], *, signed_in: bool = False
) -> Response:
    """An error as a portal page (the API's problem+json is no answer for a browser): the
    status, a title and a sentence for people, and the way back."""
    friendly_title, friendly_detail = ERROR_TEXT.get(
        status, ("Something went wrong" if status >= 500 else title, None)
    )
    if friendly_detail is None:  # the error's own sentence, unless it is the bare phrase
        friendly_detail = (
            "There is no page at this address." if not detail or detail in HTTP_PHRASES else detail
        )
    html = templates.env.get_template("portal/error.html").render(
        title=friendly_title,
        detail=friendly_detail,
        status=status,
        signed_in=signed_in,
        sign_in=status == 401,
    )
    headers = {k: v for k, v in headers.items() if k.lower() != "www-authenticate"}
    return HTMLResponse(html, status_code=status, headers=headers)


def _error_page(request: Request, err: StoreError) -> Response:
    return error_page(err.status, err.title, err.detail, {}, signed_in=True)


def install(app: FastAPI) -> None:
    """Mount the portal's pages and its stylesheet on the app."""
    app.state.error_pages = {**getattr(app.state, "error_pages", {}), "/portal": error_page}
    app.include_router(router)
    app.mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static")

    @app.get("/portal", include_in_schema=False)
    def _portal_root() -> Response:
        return _to_sign_in()
