"""Statement data for a locked run: figures from the run, detail that adds up, breakdowns,
history, the self-billing decision; CSV and JSON that are exact and reproducible."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from pipelines.statements import render
from pipelines.statements.data import (
    DETAIL_COLUMNS,
    StatementError,
    iter_statements,
    load_statement,
)
from pipelines.statements.tabular import defuse
from tests.statements.conftest import HOSTILE_TITLE, LockedPeriod


def test_every_statement_adds_up_to_the_run(locked: LockedPeriod) -> None:
    statements = list(iter_statements(locked.factory, locked.data, run_id=locked.run_id))
    assert len(statements) == len(locked.statement_ids())
    for st in statements:
        total = sum(st.lines["amount"].to_list(), Decimal(0))
        assert total == st.figures["earnings"]
        assert sum((a.amount for a in st.by_source), Decimal(0)) == total
        assert sum((a.amount for a in st.by_territory), Decimal(0)) == total
        assert st.history[-1].period == "2026-H1"
        assert st.history[-1].closing == st.figures["closing"]
        assert st.run_status == "final" and st.issued.tzinfo is not None


def test_self_billing_invoice_only_with_a_valid_agreement(locked: LockedPeriod) -> None:
    mara = locked.payee_id("Mara Ellison")
    lena = locked.payee_id("Lena Brandt")
    by_payee = {
        st.payee_id: st
        for st in iter_statements(
            locked.factory, locked.data, run_id=locked.run_id, payee_ids=[mara, lena]
        )
    }
    # Mara agreed to self-billing but is still unrecouped: nothing payable, no invoice.
    assert by_payee[mara].invoice is None
    assert by_payee[mara].invoice_refused is not None
    assert by_payee[mara].invoice_refused.startswith("nothing_payable")
    assert by_payee[lena].invoice is None and by_payee[lena].invoice_refused is None


def test_unknown_or_foreign_statement_is_missing(locked: LockedPeriod) -> None:
    sid = next(iter(locked.statement_ids().values()))
    with pytest.raises(StatementError) as err:
        load_statement(locked.factory, locked.data, org_id=locked.org_id + 999, statement_id=sid)
    assert err.value.code == "statement_missing"
    with pytest.raises(StatementError):
        load_statement(locked.factory, locked.data, org_id=locked.org_id, statement_id=10**9)


def test_csv_is_documented_exact_and_defused(locked: LockedPeriod) -> None:
    mara = locked.payee_id("Mara Ellison")
    st = load_statement(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        statement_id=locked.statement_ids()[mara],
    )
    body = render(st, "csv")
    assert body == render(st, "csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert list(rows[0]) == list(DETAIL_COLUMNS)
    assert sum(Decimal(r["amount"]) for r in rows) == st.figures["earnings"]
    hostile = [r for r in rows if HOSTILE_TITLE in r["track_title"]]
    assert hostile and all(r["track_title"] == "'" + HOSTILE_TITLE for r in hostile)
    assert defuse("-1") == "'-1" and defuse("Plain") == "Plain"


def test_json_keeps_decimals_as_strings(locked: LockedPeriod) -> None:
    mara = locked.payee_id("Mara Ellison")
    st = load_statement(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        statement_id=locked.statement_ids()[mara],
    )
    doc = json.loads(render(st, "json"))
    assert doc["figures"]["earnings"] == str(st.figures["earnings"])
    assert doc["currency"] == st.currency == "GBP"
    assert sum(Decimal(x["amount"]) for x in doc["lines"]) == st.figures["earnings"]
    assert any(x["track_title"] == HOSTILE_TITLE for x in doc["lines"])
