"""``/v1/formats``: the organisation's own report formats (specs, versioned) over the shipped
ones, as ``tunemantra formats`` manages them. Any label key reads; admin/finance write."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import LabelReaderDep, SessionDep, WriterDep
from schemas.errors import FieldError, ValidationFailed
from schemas.format_spec import SpecError, parse_spec
from schemas.store import org_formats

router = APIRouter(prefix="/v1/formats", tags=["formats"])


class FormatIn(BaseModel):
    spec: str = Field(description="the format spec, YAML (as schemas/formats/*.yaml)")


class FormatOut(BaseModel):
    name: str
    source: str = Field(description="'org' (the organisation's own) or 'shipped'")
    version: int | None = None
    spec: str | None = None
    new: bool | None = None


def _shipped() -> dict[str, Any]:
    from connectors.formats.registry import default_registry

    return dict(default_registry())


@router.get("", response_model=list[FormatOut], summary="Formats detection considers")
def list_formats(session: SessionDep, principal: LabelReaderDep) -> Any:
    own = org_formats.current(session, principal.org_id)
    names = {f.name for f in own}
    return [FormatOut(name=f.name, source="org", version=f.version) for f in own] + [
        FormatOut(name=n, source="shipped") for n in sorted(_shipped()) if n not in names
    ]


@router.get("/{name}", response_model=FormatOut, summary="One of the organisation's formats")
def get_format(name: str, session: SessionDep, principal: LabelReaderDep) -> Any:
    f = org_formats.get(session, principal.org_id, name)
    return FormatOut(name=f.name, source="org", version=f.version, spec=f.spec_yaml)


@router.put("/{name}", response_model=FormatOut, summary="Create or replace (a new version)")
def put_format(name: str, body: FormatIn, session: SessionDep, principal: WriterDep) -> Any:
    try:
        spec = parse_spec(body.spec, name)
    except SpecError as exc:
        raise ValidationFailed([FieldError("spec", str(exc))], str(exc)) from None
    if spec.name != name:
        raise ValidationFailed([FieldError("spec.name", f"must be {name!r}, not {spec.name!r}")])
    f, new = org_formats.add(session, principal.org_id, body.spec, name)
    return FormatOut(name=f.name, source="org", version=f.version, new=new)


@router.delete("/{name}", status_code=204, summary="Retire (its versions are kept)")
def delete_format(name: str, session: SessionDep, principal: WriterDep) -> None:
    org_formats.remove(session, principal.org_id, name)
