"""Every error as RFC 9457 ``application/problem+json``, with per-field/row ``errors``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response

from schemas.errors import StoreError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
RETRY_AFTER = 2  # seconds: what a busy answer asks the client to wait before retrying
BUSY_DETAIL = "the store is busy (another write holds it); nothing was written, retry shortly"
# A page renderer per path prefix (the portal's): errors there are pages, not JSON.
ErrorPage = Callable[[int, str, str, dict[str, str]], Response]


def _page(request: Request) -> ErrorPage | None:
    """The page renderer of the request's path (the portal's), or None (an API route)."""
    pages: dict[str, ErrorPage] = getattr(request.app.state, "error_pages", {})
    for prefix, page in pages.items():
        if request.url.path == prefix or request.url.path.startswith(prefix + "/"):
            return page
    return None


def busy(request: Request, detail: str = BUSY_DETAIL) -> Response:
    """503 with ``Retry-After``: the store (or the server) is busy after a bounded wait."""
    return problem(request, 503, "Busy", detail, headers={"Retry-After": str(RETRY_AFTER)})


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The error as ``application/problem+json``; under a path with an error page (the
    portal), as that page instead: a browser gets HTML for every status, the API keeps JSON."""
    page = _page(request)
    if page is not None:
        return page(status, title, detail, dict(headers or {}))
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem(
            request,
            exc.status,
            exc.title,
            exc.detail,
            type_=exc.type,
            errors=[e.as_dict() for e in exc.errors] if exc.errors else None,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            where = loc[0] if loc else "body"
            name = ".".join(loc[1:]) or where
            errors.append(
                {
                    "field": name,
                    "in": where,
                    "message": err["msg"].removeprefix("Value error, "),
                    "code": err["type"],
                }
            )
        return problem(
            request,
            422,
            "Validation failed",
            f"{len(errors)} validation error(s); nothing was written",
            type_="https://tunemantra.org/problems/validation",
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return problem(
            request,
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(PoolTimeout)
    async def _no_connection(request: Request, exc: PoolTimeout) -> Response:
        log.warning("no store connection free on %s: %s", request.url.path, exc)
        return busy(request, "the server is busy; nothing was written, retry shortly")

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> Response:
        if "locked" in str(exc.orig).lower() or "could not serialize" in str(exc.orig).lower():
            return busy(request)
        log.exception("database error on %s", request.url.path)
        return problem(
            request, 500, "Internal server error", "a database error occurred; nothing was written"
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # A value the database refuses (out of range, bad encoding) that validation missed.
        return problem(
            request,
            422,
            "Validation failed",
            "a value is out of range for the store; nothing was written",
            type_="https://tunemantra.org/problems/validation",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return problem(
            request,
            500,
            "Internal server error",
            "an unexpected error occurred; nothing was written",
        )
