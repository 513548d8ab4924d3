"""List, get, create, update and delete for one resource of the store, tenancy-scoped."""

# No `from __future__ import annotations` here: the route signatures use classes held in
# local variables, which FastAPI must see as objects, not as strings to resolve.

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, create_model
from sqlalchemy.orm import Session

from api.deps import (
    DecimalRoute,
    PathId,
    Principal,
    PrincipalDep,
    SessionDep,
    WriterDep,
    read_in_pool,
)
from api.queries import Page, filtered, page_of, scoped
from schemas.errors import NotFound
from schemas.store import service


def page_model(out: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{out.__name__.removesuffix('Out')}Page",
        items=(list[out], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, None),
    )


def get_visible(session: Any, kind: str, principal: Any, obj_id: int) -> Any:
    """One row the caller may see, or 404 (another tenant's row is indistinguishable from none)."""
    model = service.SPECS[kind].model
    obj = session.scalar(scoped(model, principal).where(model.id == obj_id))
    if obj is None:
        raise NotFound(f"{kind[:-1]} {obj_id}")
    return obj


def crud_router(kind: str, out: type[BaseModel], filters: type[Page]) -> APIRouter:
    spec = service.SPECS[kind]
    create_in: Any = spec.create  # runtime classes used as annotations: FastAPI reads them
    patch_in: Any = spec.patch
    model = spec.model
    noun = kind[:-1]
    router = APIRouter(route_class=DecimalRoute, prefix=f"/v1/{kind}", tags=[kind])
    page = page_model(out)

    # The reads are ``async`` and run their store work and the end of their transaction in
    # ONE thread-pool hop (``read_in_pool``): a sync handler would also send FastAPI's check
    # of the returned model to the pool, a hop of its own (the check of an instance already
    # validated is cheap enough for the event loop), and the session's end another.
    def list_sync(session: Session, principal: Principal, q: Page) -> dict[str, Any]:
        return page_of(session, filtered(scoped(model, principal), model, q), model, q, out)

    def get_sync(session: Session, principal: Principal, obj_id: int) -> BaseModel:
        return out.model_validate(get_visible(session, kind, principal, obj_id))

    @router.get("", response_model=page, summary=f"List {kind}")
    async def list_(
        session: SessionDep,
        principal: PrincipalDep,
        q: Annotated[filters, Query()],  # type: ignore[valid-type]
    ) -> Any:
        return await read_in_pool(session, list_sync, session, principal, q)

    @router.get("/{obj_id}", response_model=out, summary=f"Get a {noun}")
    async def get(obj_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
        return await read_in_pool(session, get_sync, session, principal, obj_id)

    @router.post(
        "", response_model=out, status_code=status.HTTP_201_CREATED, summary=f"Create a {noun}"
    )
    def create(
        body: create_in,
        session: SessionDep,
        principal: WriterDep,
        response: Response,
    ) -> Any:
        obj = service.create(session, principal.org_id, kind, body)
        session.refresh(obj)
        response.headers["Location"] = f"/v1/{kind}/{obj.id}"
        return out.model_validate(obj)

    @router.patch("/{obj_id}", response_model=out, summary=f"Update a {noun}")
    def update(
        obj_id: PathId,
        body: patch_in,
        session: SessionDep,
        principal: WriterDep,
    ) -> Any:
        obj = service.update(session, principal.org_id, kind, obj_id, body)
        session.refresh(obj)
        return out.model_validate(obj)

    @router.delete("/{obj_id}", status_code=status.HTTP_204_NO_CONTENT, summary=f"Delete a {noun}")
    def delete(obj_id: PathId, session: SessionDep, principal: WriterDep) -> Response:
        service.delete(session, principal.org_id, kind, obj_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
