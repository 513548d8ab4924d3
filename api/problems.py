"""Every error as RFC 9457 ``application/problem+json``, with per-field/row ``errors``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException

from schemas.errors import StoreError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
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
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
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
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
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
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(
            request,
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> JSONResponse:
        if "locked" in str(exc.orig).lower() or "could not serialize" in str(exc.orig).lower():
            return problem(
                request,
                503,
                "Busy",
                "another write holds the store; nothing was written, retry shortly",
                headers={"Retry-After": "2"},
            )
        log.exception("database error on %s", request.url.path)
        return problem(
            request, 500, "Internal server error", "a database error occurred; nothing was written"
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (out of range, bad encoding) that validation missed.
        return problem(
            request,
            422,
            "Validation failed",
            "a value is out of range for the store; nothing was written",
            type_="https://tunemantra.org/problems/validation",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(
            request,
            500,
            "Internal server error",
            "an unexpected error occurred; nothing was written",
        )
