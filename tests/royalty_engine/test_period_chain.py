"""The period-chain rules (``royalty_engine.periods``) on plain values: which periods may run,
be corrected, approved or locked, whatever store the runs come from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from royalty_engine.periods import (
    Period,
    RunError,
    check_chain,
    check_rerun,
    check_transition,
    opening_run,
    parse_period,
    unended_override,
)


@dataclass
class Run:
    id: int
    period: str
    status: str
    version: int = 1
    previous_run_id: int | None = None

    @property
    def period_start(self) -> dt.date:
        return parse_period(self.period).start

    @property
    def period_end(self) -> dt.date:
        return parse_period(self.period).end


def chain(*runs: Run) -> dict[str, Run]:
    return {r.period: r for r in runs}


def code(excinfo: pytest.ExceptionInfo[RunError]) -> str:
    return excinfo.value.code


JAN, FEB, MAR = parse_period("2026-01"), parse_period("2026-02"), parse_period("2026-03")


def test_the_first_period_opens_from_nothing() -> None:
    assert check_chain({}, JAN, None, doing="run") is None
    assert opening_run({}, JAN) is None


def test_a_period_opens_from_the_approved_period_before() -> None:
    jan = Run(1, "2026-01", "approved")
    assert check_chain(chain(jan), FEB, None, doing="run") is jan
    assert check_chain(chain(jan), FEB, 1, doing="approve") is jan


@pytest.mark.parametrize(
    ("runs", "period", "opened_from", "correcting", "expected"),
    [
        ((Run(1, "2026-01", "approved"),), MAR, None, False, "period_gap"),
        ((Run(1, "2026-01", "calculated"),), FEB, None, False, "previous_not_approved"),
        ((Run(1, "2026-01", "approved"),), FEB, 9, False, "stale_opening"),
        ((), JAN, 9, False, "stale_opening"),
        (
            (Run(1, "2026-01", "locked"), Run(2, "2026-02", "approved", previous_run_id=7)),
            MAR,
            None,
            False,
            "stale_previous",
        ),
        ((Run(1, "2026-Q1", "approved"),), FEB, None, False, "period_overlaps"),
        ((Run(1, "2026-02", "locked"),), JAN, None, False, "later_period_settled"),
    ],
)
def test_what_breaks_the_chain_is_refused(
    runs: tuple[Run, ...], period: Period, opened_from: int | None, correcting: bool, expected: str
) -> None:
    with pytest.raises(RunError) as excinfo:
        check_chain(chain(*runs), period, opened_from, doing="run", correcting=correcting)
    assert code(excinfo) == expected


def test_a_correction_may_run_under_a_settled_later_period() -> None:
    feb = Run(2, "2026-02", "locked", previous_run_id=None)
    assert check_chain(chain(feb), JAN, None, doing="correct", correcting=True) is None


def test_a_locked_period_is_only_corrected() -> None:
    locked = [Run(1, "2026-01", "locked")]
    with pytest.raises(RunError) as excinfo:
        check_rerun(JAN, locked, None)
    assert code(excinfo) == "period_locked"
    check_rerun(JAN, locked, "late report")
    with pytest.raises(RunError) as excinfo:
        check_rerun(JAN, [], "late report")
    assert code(excinfo) == "not_locked"
    check_rerun(JAN, [], None)


def test_transitions_go_calculated_approved_locked() -> None:
    assert check_transition(Run(1, "2026-01", "calculated"), "approved") is True
    assert check_transition(Run(1, "2026-01", "approved"), "locked") is True
    assert check_transition(Run(1, "2026-01", "locked"), "locked") is False  # already there
    with pytest.raises(RunError) as excinfo:
        check_transition(Run(1, "2026-01", "calculated"), "locked")
    assert code(excinfo) == "bad_transition"


def test_a_period_is_settled_only_once_it_has_ended() -> None:
    assert unended_override(JAN, "approved", dt.date(2026, 2, 1), None) is None
    with pytest.raises(RunError) as excinfo:
        unended_override(JAN, "approved", dt.date(2026, 1, 31), None)
    assert code(excinfo) == "period_not_ended"
    with pytest.raises(RunError):
        unended_override(JAN, "approved", dt.date(2026, 1, 31), "   ")
    assert unended_override(JAN, "locked", dt.date(2026, 1, 31), " audit ") == {
        "rule": "period_not_ended",
        "period_end": "2026-01-31",
        "today": "2026-01-31",
        "reason": "audit",
    }
