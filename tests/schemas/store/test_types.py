"""Money and Ratio columns keep decimals exact on SQLite and PostgreSQL, or refuse them."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from schemas.errors import ValidationFailed
from schemas.store.models import Basis, Contract, ContractRate, Payee, StatementFrequency
from tests.schemas.store.conftest import Catalog, d


def _payee(org_id: int, rate: object) -> Payee:
    return Payee(org_id=org_id, name="P", statement_currency="EUR", withholding_rate=rate)


def _contract(org_id: int, payee_id: int, minimum: object) -> Contract:
    return Contract(
        org_id=org_id,
        payee_id=payee_id,
        reference="C-1",
        name="Deal",
        basis=Basis.PER_UNIT,
        currency="EUR",
        statement_frequency=StatementFrequency.MONTHLY,
        start_date=d("2024-01-01"),
        minimum_payment=minimum,
    )


def _raw(session: Session, sql: str, **params: object) -> object:
    return session.execute(sa.text(sql), params).scalar_one()


@pytest.mark.parametrize(
    ("money", "ratio", "per_unit"),
    [
        ("12345678901234.123456", "0.1234567891", "0.0004"),
        ("99999999999999.999999", "1", "9999.9999999999"),
        ("-12345678901234.000001", "0.0000000001", "0"),
        ("0.000001", "0.9999999999", "1234.5678901234"),
    ],
)
def test_money_and_ratio_round_trip_exactly(
    session: Session,
    factory: sessionmaker[Session],
    org_id: int,
    money: str,
    ratio: str,
    per_unit: str,
) -> None:
    payee = _payee(org_id, Decimal(ratio))
    session.add(payee)
    session.flush()
    contract = _contract(org_id, payee.id, Decimal(money))
    session.add(contract)
    session.flush()
    rate = ContractRate(
        org_id=org_id,
        contract_id=contract.id,
        rate=Decimal(per_unit),
        effective_from=d("2024-01-01"),
    )
    session.add(rate)
    session.commit()

    with factory() as fresh:
        assert fresh.get(Payee, payee.id).withholding_rate == Decimal(ratio)
        assert fresh.get(Contract, contract.id).minimum_payment == Decimal(money)
        assert fresh.get(ContractRate, rate.id).rate == Decimal(per_unit)
        # What the database itself holds: never a binary float (which would lose digits of a
        # 20-digit amount), the exact value as NUMERIC (PostgreSQL) or canonical text (SQLite).
        stored = _raw(fresh, "SELECT minimum_payment FROM contracts WHERE id = :i", i=contract.id)
        assert not isinstance(stored, float)
        assert Decimal(stored) == Decimal(money)  # type: ignore[arg-type]


def test_values_read_back_at_the_column_scale_on_every_backend(
    session: Session, factory: sessionmaker[Session], org_id: int
) -> None:
    payee = _payee(org_id, Decimal("0.5"))
    session.add(payee)
    session.flush()
    contract = _contract(org_id, payee.id, 12)  # an int is exact too
    session.add(contract)
    session.commit()
    with factory() as fresh:
        assert str(fresh.get(Payee, payee.id).withholding_rate) == "0.5000000000"
        assert str(fresh.get(Contract, contract.id).minimum_payment) == "12.000000"


@pytest.mark.parametrize("value", [0.5, 0.1, 1.0])
def test_a_float_is_refused(session: Session, org_id: int, value: float) -> None:
    session.add(_payee(org_id, value))
    with pytest.raises(sa.exc.StatementError) as err:
        session.flush()
    assert isinstance(err.value.orig, TypeError)
    assert "never float" in str(err.value.orig)
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Payee)) == 0


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("ratio", "0.12345678905", "more than 10 decimal places"),
        ("ratio", "0.00000000001", "more than 10 decimal places"),
        ("money", "1.0000005", "more than 6 decimal places"),
        ("money", "0.0000001", "more than 6 decimal places"),
        # One digit too many before the point: PostgreSQL would raise a DataError and SQLite
        # would store it; both refuse it the same way before it reaches the database.
        ("money", "123456789012345", "more than 14 digits before the point"),
        ("ratio", "10000", "more than 4 digits before the point"),
        ("money", "NaN", "not a finite number"),
        ("ratio", "Infinity", "not a finite number"),
    ],
)
def test_a_value_the_column_cannot_hold_exactly_is_refused_not_rounded(
    session: Session, org_id: int, column: str, value: str, message: str
) -> None:
    if column == "ratio":
        session.add(_payee(org_id, Decimal(value)))
    else:
        payee = _payee(org_id, Decimal(0))
        session.add(payee)
        session.flush()
        session.add(_contract(org_id, payee.id, Decimal(value)))
    with pytest.raises(sa.exc.StatementError) as err:
        session.flush()
    assert isinstance(err.value.orig, ValueError)
    assert message in str(err.value.orig)


def test_trailing_zeros_beyond_the_scale_lose_nothing_and_are_accepted(
    session: Session, factory: sessionmaker[Session], org_id: int
) -> None:
    payee = _payee(org_id, Decimal("0.250000000000000"))
    session.add(payee)
    session.commit()
    with factory() as fresh:
        assert fresh.get(Payee, payee.id).withholding_rate == Decimal("0.25")


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("payees", "withholding_rate", "0.12345678901"),
        ("contracts", "minimum_payment", "10.1234567"),
        ("contracts", "minimum_payment", "123456789012345"),
    ],
)
def test_the_service_names_the_field_of_an_inexact_decimal(
    cat: Catalog, kind: str, field: str, value: str
) -> None:
    payee = cat.payee("Owner")
    data = {field: value}
    with pytest.raises(ValidationFailed) as err:
        cat.payee("P", **data) if kind == "payees" else cat.contract(payee, **data)
    assert [e.field for e in err.value.errors] == [field]
    assert cat.count(Payee) == 1
    assert cat.count(Contract) == 0
