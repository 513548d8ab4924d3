"""Contract sub-resources: effective-dated rates and terms, dated advances / recoupable costs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from api.deps import DecimalRoute, PathId, PrincipalDep, SessionDep, WriterDep
from api.queries import DatedFilter, Page, filtered, page_of, scoped
from api.routes.crud import get_visible, page_model
from schemas import catalog as c
from schemas.store import service
from schemas.store.models import Contract, ContractCharge, ContractRate, ContractTerms

router = APIRouter(
    route_class=DecimalRoute, prefix="/v1/contracts/{contract_id}", tags=["contracts"]
)
RatePage, ChargePage = page_model(c.RateOut), page_model(c.ChargeOut)


@router.get(
    "/terms",
    response_model=list[c.TermsOut],
    summary="A contract's effective-dated terms, every version oldest first",
    description=(
        "Distribution fee, reserve rate and periods, minimum payment and statement frequency, "
        "each version in force from its `effective_from` until the day before the next one's. "
        "The first version (`id` null) is the contract's own terms, from its start date (change "
        "it on the contract); a run uses the version in force on its period's first day."
    ),
)
def list_terms(contract_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
    contract = get_visible(session, "contracts", principal, contract_id)
    assert isinstance(contract, Contract)
    return [c.TermsOut.model_validate(v) for v in service.term_versions(session, contract)]


@router.post(
    "/terms",
    response_model=c.TermsOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a version of the terms from a date (fields left out are kept from the day before)",
)
def add_terms(
    contract_id: PathId, body: c.TermsIn, session: SessionDep, principal: WriterDep
) -> Any:
    version = service.add_terms(session, principal.org_id, contract_id, body)
    session.refresh(version)
    contract = session.get(Contract, version.contract_id)
    assert contract is not None
    dated = {v["id"]: v for v in service.term_versions(session, contract)}
    return c.TermsOut.model_validate(dated[version.id])


@router.delete(
    "/terms/{terms_id}",
    status_code=204,
    summary="Delete a mistaken version of the terms (audited)",
)
def delete_terms(
    contract_id: PathId, terms_id: PathId, session: SessionDep, principal: WriterDep
) -> Response:
    service.delete_contract_child(session, principal.org_id, ContractTerms, contract_id, terms_id)
    return Response(status_code=204)


@router.get("/rates", response_model=RatePage, summary="List a contract's rates")
def list_rates(
    contract_id: PathId,
    session: SessionDep,
    principal: PrincipalDep,
    q: Annotated[DatedFilter, Query()],
) -> Any:
    get_visible(session, "contracts", principal, contract_id)
    stmt = scoped(ContractRate, principal).where(ContractRate.contract_id == contract_id)
    return page_of(session, filtered(stmt, ContractRate, q), ContractRate, q, c.RateOut)


@router.post(
    "/rates",
    response_model=c.RateOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a rate (an open-ended rate with the same key is closed the day before)",
)
def add_rate(contract_id: PathId, body: c.RateIn, session: SessionDep, principal: WriterDep) -> Any:
    rate = service.add_rate(session, principal.org_id, contract_id, body)
    session.refresh(rate)  # answer with the stored values (scale), as a later GET will
    return c.RateOut.model_validate(rate)


@router.get(
    "/charges", response_model=ChargePage, summary="List a contract's advances and recoupable costs"
)
def list_charges(
    contract_id: PathId, session: SessionDep, principal: PrincipalDep, q: Annotated[Page, Query()]
) -> Any:
    get_visible(session, "contracts", principal, contract_id)
    stmt = scoped(ContractCharge, principal).where(ContractCharge.contract_id == contract_id)
    return page_of(session, stmt, ContractCharge, q, c.ChargeOut)


@router.post(
    "/charges",
    response_model=c.ChargeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record an advance or a recoupable cost",
)
def add_charge(
    contract_id: PathId, body: c.ChargeIn, session: SessionDep, principal: WriterDep
) -> Any:
    charge = service.add_charge(session, principal.org_id, contract_id, body)
    session.refresh(charge)
    return c.ChargeOut.model_validate(charge)


@router.delete(
    "/rates/{rate_id}",
    status_code=204,
    summary="Delete a mistaken rate (audited; to change a rate, add a new one)",
)
def delete_rate(
    contract_id: PathId, rate_id: PathId, session: SessionDep, principal: WriterDep
) -> Response:
    service.delete_contract_child(session, principal.org_id, ContractRate, contract_id, rate_id)
    return Response(status_code=204)


@router.delete(
    "/charges/{charge_id}", status_code=204, summary="Delete a mistaken advance or cost (audited)"
)
def delete_charge(
    contract_id: PathId, charge_id: PathId, session: SessionDep, principal: WriterDep
) -> Response:
    service.delete_contract_child(session, principal.org_id, ContractCharge, contract_id, charge_id)
    return Response(status_code=204)
