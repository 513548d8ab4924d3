"""Request dependencies: the caller (organisation, role, payee) and a unit of work."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Path, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from schemas.catalog import MAX_ID
from schemas.errors import Forbidden, StoreError
from schemas.store.keys import check_key
from schemas.store.models import Role

T = TypeVar("T")
WRITERS = frozenset({Role.ADMIN, Role.FINANCE})
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
bearer = HTTPBearer(auto_error=False)


class DecimalJSONRequest(Request):
    """JSON numbers become ``Decimal``, never ``float``: ``"amount": 99999999999999.99``
    arrives exactly as written (a float would already have lost the last cent)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class DecimalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return decimal_handler


class Unauthorized(StoreError):
    def __init__(self) -> None:
        super().__init__(
            detail="a valid API key is required (X-API-Key header or Authorization: Bearer)",
            status=401,
            title="Unauthorized",
        )


@dataclass(frozen=True)
class Principal:
    org_id: int
    role: Role
    key_id: int
    key_prefix: str
    payee_id: int | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}"


READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the handler returns, else rolled back.
    A GET reads without the store's write lock (``db.read_sessions``): it never waits for a
    writer, such as an ingestion, and never makes one wait.

    ``async``: opening the session and its transaction does no I/O (the connection is taken
    at the first query, in the thread that runs it), so it costs no thread-pool hop; ending
    it (commit or rollback: I/O) runs in the pool, shielded so that a request cancelled by
    its client still gives its connection back."""
    factory: sessionmaker[Session] = (
        request.app.state.read_factory
        if request.method in READS
        else request.app.state.session_factory
    )
    stack = ExitStack()
    session = stack.enter_context(factory())
    stack.enter_context(session.begin())
    try:
        yield session
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(stack.__exit__, type(exc), exc, exc.__traceback__)
        raise
    if not session.in_transaction():  # ended in the handler's hop (``read_in_pool``)
        stack.close()  # no connection held: closing does no I/O
        return
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(stack.__exit__, None, None, None)


async def read_in_pool(session: Session, func: Callable[..., T], /, *args: Any) -> T:
    """A read handler's store work, and the end of its transaction, in ONE thread-pool hop:
    ``get_session`` then has nothing left to do off the event loop."""

    def work() -> T:
        result = func(*args)
        session.commit()
        return result

    return await run_in_threadpool(work)


# scope="function": commit (or roll back) before the response is sent, so a 2xx means written.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str | None, Depends(api_key_header)],
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    plain = api_key or (token.credentials if token else None)
    row = check_key(session, plain, secret_key=request.app.state.secret_key) if plain else None
    if row is None:
        raise Unauthorized()
    principal = Principal(row.org_id, row.role, row.id, row.prefix, row.payee_id)
    session.info.update(actor=principal.actor, api_key_id=row.id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def writer(principal: PrincipalDep) -> Principal:
    if principal.role not in WRITERS:
        raise Forbidden(f"this needs an admin or finance key, not {principal.role.value}")
    return principal


WriterDep = Annotated[Principal, Depends(writer)]


def label_reader(principal: PrincipalDep) -> Principal:
    """Any key of the label itself: payee keys see their own statements, not the label's books
    (runs across all payees, ingested files, rates)."""
    if principal.role is Role.PAYEE:
        raise Forbidden("this is the label's ledger; payee keys cannot read it")
    return principal


LabelReaderDep = Annotated[Principal, Depends(label_reader)]
