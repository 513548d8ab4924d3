"""The FastAPI application: ``create_app`` wires a session factory and the key secret in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from api import portal, problems
from api.deps import PrincipalDep, SessionDep, read_in_pool
from api.gate import InFlightGate
from api.queries import (
    ArtistFilter,
    ContractFilter,
    Page,
    PayeeFilter,
    ReleaseFilter,
    SplitFilter,
    TrackFilter,
)
from api.routes import (
    audit,
    contracts,
    deliveries,
    formats,
    fx,
    imports,
    ingest_files,
    royalty_warnings,
    runs,
    statements,
    suspense,
    tracks,
)
from api.routes.crud import crud_router
from pipelines.settings import get_settings
from schemas import catalog as c
from schemas.store import db
from schemas.store.models import Organisation

# Swagger UI and ReDoc, vendored from npm (api/static/docs/README): the docs work offline.
DOCS_ASSETS = Path(__file__).parent / "static" / "docs"
DOCS_STATIC = "/docs-static"

RESOURCES: list[tuple[str, type[BaseModel], type[Page]]] = [
    ("artists", c.ArtistOut, ArtistFilter),
    ("releases", c.ReleaseOut, ReleaseFilter),
    ("tracks", c.TrackOut, TrackFilter),
    ("payees", c.PayeeOut, PayeeFilter),
    ("contracts", c.ContractOut, ContractFilter),
    ("splits", c.SplitOut, SplitFilter),
]


def create_app(
    session_factory: sessionmaker[Session],
    *,
    secret_key: str,
    data_dir: Path | None = None,
    max_in_flight: int | None = None,
    queue_wait: float | None = None,
) -> FastAPI:
    """The app on this store; ``data_dir`` holds the runs' files and exported statements
    (default: the settings' data directory). At most ``max_in_flight`` requests are at work
    at once (``api.gate``; give the engine a pool at least that large), the others wait up to
    ``queue_wait`` seconds for their turn (defaults: the settings')."""
    settings = get_settings()
    app = FastAPI(
        docs_url=None,  # served below from the package's own assets, not a CDN
        redoc_url=None,
        title="TuneMantra API",
        version="1",
        description=(
            "Catalogue, rights and contracts of one organisation. Authenticate with "
            "`X-API-Key: <key>` or `Authorization: Bearer <key>`; every query is scoped to the "
            "key's organisation (and, for payee keys, to that payee). Errors are RFC 9457 "
            "`application/problem+json` with an `errors` list naming each field and row."
        ),
    )
    app.state.session_factory = session_factory
    app.state.read_factory = db.read_sessions(session_factory)
    app.state.secret_key = secret_key
    app.state.data_dir = data_dir if data_dir is not None else settings.data_dir
    app.add_middleware(
        InFlightGate,
        limit=max_in_flight or settings.api_max_in_flight,
        wait=queue_wait or settings.api_queue_wait,
    )
    problems.install(app)
    install_docs(app)

    # async, the store work in one thread-pool hop (see ``api.routes.crud``)
    @app.get("/healthz", tags=["health"])
    async def healthz(session: SessionDep) -> dict[str, str]:
        await read_in_pool(session, session.execute, sa.text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/v1/me", tags=["auth"], summary="Who this key is")
    async def me(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
        org = await read_in_pool(session, session.get, Organisation, principal.org_id)
        assert org is not None
        return {
            "organisation": org.slug,
            "role": principal.role.value,
            "payee_id": principal.payee_id,
            "key_prefix": principal.key_prefix,
        }

    app.include_router(tracks.router)  # before the generic /v1/tracks/{id} routes
    for kind, out, filters in RESOURCES:
        app.include_router(crud_router(kind, out, filters))
    app.include_router(contracts.router)
    app.include_router(imports.router)
    app.include_router(audit.router)
    app.include_router(suspense.router)
    app.include_router(deliveries.router)
    app.include_router(statements.router)
    app.include_router(runs.router)
    app.include_router(ingest_files.router)
    app.include_router(fx.router)
    app.include_router(formats.router)
    app.include_router(royalty_warnings.router)
    portal.install(app)
    return app


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` on assets shipped in the package: no CDN, no
    Google Fonts, so both render on a machine without internet access."""
    app.mount(DOCS_STATIC, StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    assert app.openapi_url is not None
    openapi_url = app.openapi_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/swagger-ui/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_STATIC}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_STATIC}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
