"""The payee portal: server-rendered pages (Jinja2, no JavaScript needed) where a payee signs
in with the API key the label gave them, reads their statements and downloads the files.

Only payee keys may sign in: the portal shows one payee's money (its balance chart is that
payee's); admin, finance and analyst keys use the API (``/v1/statements``) instead.

Session: signing in sets the ``tm_portal`` cookie (HttpOnly, SameSite=Strict, Secure on https,
eight hours) holding ``<key id>.<expiry>.<HMAC>``: the HMAC-SHA256 under the server's secret
key of the key id, expiry and the key's stored hash. The plain key is never stored; revoking
the key ends its sessions. CSRF: the cookie is SameSite=Strict, so no other site's page can
send it, and the only state-changing request (sign-out) is a POST.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
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
    StatementFilter,
    StatementRef,
    balance_history,
    file_response,
    find_statement,
    list_statements,
    load,
    statement_file,
)
from pipelines.statements.data import FIGURE_LABELS, FIGURES, Statement
from schemas.errors import StoreError
from schemas.store.keys import verify_key
from schemas.store.models import ApiKey, Role

HERE = Path(__file__).parent
COOKIE = "tm_portal"
SESSION_SECONDS = 8 * 3600
FORMAT_LABELS = {
    "pdf": "PDF",
    "xlsx": "Excel (XLSX)",
    "csv": "CSV (line detail)",
    "json": "JSON",
    "invoice": "Self-billing invoice (PDF)",
}

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)
router = APIRouter(prefix="/portal", include_in_schema=False)


# --- the session cookie ----------------------------------------------------------------------
def _mac(secret_key: str, key_id: int, expires: int, key_hash: str) -> str:
    msg = f"tm-portal|{key_id}|{expires}|{key_hash}".encode()
    return hmac.new(secret_key.encode(), msg, hashlib.sha256).hexdigest()


def session_token(secret_key: str, row: ApiKey, now: dt.datetime) -> str:
    expires = int(now.timestamp()) + SESSION_SECONDS
    return f"{row.id}.{expires}.{_mac(secret_key, row.id, expires, row.key_hash)}"


def _principal(row: ApiKey) -> Principal:
    return Principal(row.org_id, row.role, row.id, row.prefix, row.payee_id)


def session_principal(request: Request) -> Principal | None:
    """The signed-in payee, or None (no cookie, forged, expired, or the key was revoked)."""
    token = request.cookies.get(COOKIE, "")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    key_id, expires = int(parts[0]), int(parts[1])
    if expires < dt.datetime.now(dt.UTC).timestamp():
        return None
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None or row.role is not Role.PAYEE:
            return None
        expected = _mac(request.app.state.secret_key, key_id, expires, row.key_hash)
        if not hmac.compare_digest(expected, parts[2]):
            return None
        return _principal(row)


def _sign_in_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "portal/sign_in.html", {"error": error, "title": "Sign in"}, status_code=status
    )


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=303)


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


def balance_charts(history: BalanceHistory) -> list[Chart]:
    """Closing balance per period, summed over the payee's contracts, one chart per
    currency; coordinates computed here so the page needs no JavaScript."""
    per: dict[str, dict[tuple[dt.date, str], Decimal]] = {}
    for contract in history.contracts:
        series = per.setdefault(contract.currency, {})
        for m in contract.periods:
            key = (m.period_end, m.period)
            series[key] = series.get(key, Decimal(0)) + Decimal(m.closing)
    charts = []
    plot_width = Chart.width - 2 * Chart.pad
    for currency, series in sorted(per.items()):
        periods = [period for _, period in sorted(series)]
        values = [series[k] for k in sorted(series)]
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
        charts.append(Chart(currency, points, _scale(Decimal(0), top, span), top, bottom))
    return charts


# --- pages -----------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    if session_principal(request) is not None:
        return RedirectResponse("/portal/statements", status_code=303)
    return _sign_in_page(request, None, 200)


@router.post("/", response_class=HTMLResponse)
def sign_in(request: Request, api_key: Annotated[str, Form(max_length=200)] = "") -> Response:
    factory: sessionmaker[Session] = request.app.state.session_factory
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
    """Everything the list page shows, read in short sessions (no session held open while
    statements load their run files)."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    assert principal.payee_id is not None
    with factory() as session:
        items, _ = list_statements(session, principal, StatementFilter(limit=500))
        history = balance_history(session, principal, principal.payee_id)
    rows = []
    for item in sorted(items, key=lambda s: (s.period, s.run_version, s.id), reverse=True):
        ref = find_statement(factory, principal, item.id)
        statement = load(factory, request.app.state.data_dir, ref)
        rows.append({"item": item, "formats": _formats(statement)})
    return {
        "payee_name": history.payee_name,
        "rows": rows,
        "history": history,
        "charts": balance_charts(history),
        "title": "Your statements",
        "signed_in": True,
    }


def _formats(statement: Statement) -> list[str]:
    return [*FORMATS, "invoice"] if statement.invoice is not None else list(FORMATS)


@router.get("/statements", response_class=HTMLResponse)
async def statements_page(request: Request) -> Response:
    principal = await run_in_threadpool(session_principal, request)
    if principal is None:
        return _to_sign_in()
    context = await run_in_threadpool(_statements_page, request, principal)
    context |= {"format_labels": FORMAT_LABELS, "figure_labels": FIGURE_LABELS}
    return templates.TemplateResponse(request, "portal/statements.html", context)


def _statement(request: Request, principal: Principal, statement_id: int) -> dict[str, Any]:
    factory: sessionmaker[Session] = request.app.state.session_factory
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
    factory: sessionmaker[Session] = request.app.state.session_factory
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


def _error_page(request: Request, err: StoreError) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "portal/error.html",
        {"title": err.title, "detail": err.detail, "signed_in": True},
        status_code=err.status,
    )


def install(app: FastAPI) -> None:
    """Mount the portal's pages and its stylesheet on the app."""
    app.include_router(router)
    app.mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static")

    @app.get("/portal", include_in_schema=False)
    def _portal_root() -> Response:
        return _to_sign_in()
