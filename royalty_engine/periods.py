"""Accounting periods: ``2026-01`` (a month), ``2026-Q1`` (a quarter), ``2026-H1`` (a half).

A period is a whole number of calendar months. Revenue lines belong to a period through their
reporting period (``YYYY-MM``); reserves are released and escalation trackers carried over in
units of periods of the same length.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from royalty_engine.terms import EngineError

_FORMS = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4])|H([12]))$")
_LENGTH = {"month": 1, "quarter": 3, "half": 6}
# How often each contract is statemented, in months (StatementFrequency values).
FREQUENCY_MONTHS = {"monthly": 1, "quarterly": 3, "half_yearly": 6}


class PeriodError(ValueError):
    """A period string that is not a period."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"not a period: {value!r}; expected YYYY-MM (2026-01), YYYY-Qn (2026-Q1) "
            "or YYYY-Hn (2026-H1)"
        )
        self.value = value


@dataclass(frozen=True, order=True)
class Period:
    year: int
    first_month: int  # 1..12
    months_long: int  # 1, 3 or 6

    @property
    def label(self) -> str:
        if self.months_long == 1:
            return f"{self.year:04d}-{self.first_month:02d}"
        if self.months_long == 3:
            return f"{self.year:04d}-Q{(self.first_month - 1) // 3 + 1}"
        return f"{self.year:04d}-H{(self.first_month - 1) // 6 + 1}"

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, self.first_month, 1)

    @property
    def end(self) -> dt.date:
        y, m = divmod(self.first_month - 1 + self.months_long, 12)
        return dt.date(self.year + y, m + 1, 1) - dt.timedelta(days=1)

    @property
    def months(self) -> list[str]:
        """The reporting periods (``YYYY-MM``) inside this period."""
        out = []
        for i in range(self.months_long):
            y, m = divmod(self.first_month - 1 + i, 12)
            out.append(f"{self.year + y:04d}-{m + 1:02d}")
        return out

    def has_ended(self, today: dt.date) -> bool:
        """Whether the period is over on ``today``: its last day has passed (on that day its
        sales are still being made, and the reports for it are still to come)."""
        return self.end < today

    def shift(self, n: int) -> Period:
        """The period ``n`` periods of the same length later (earlier when negative)."""
        index = self.year * 12 + self.first_month - 1 + n * self.months_long
        y, m = divmod(index, 12)
        return Period(y, m + 1, self.months_long)

    def closes_statement(self, frequency: str) -> bool:
        """Whether a contract statemented at ``frequency`` has a statement date in this period:
        its statement period (calendar month, quarter or half) ends inside this period."""
        every = FREQUENCY_MONTHS[frequency]
        end_month = self.first_month + self.months_long - 1  # 1..12
        first = self.first_month
        return any(m % every == 0 for m in range(first, end_month + 1))

    def __str__(self) -> str:
        return self.label


def statement_period(day: dt.date, frequency: str) -> Period:
    """The statement period (calendar month, quarter or half, by the contract's
    ``frequency``) that ``day`` falls in: what reserves are held for, in a contract's own
    periods, whatever length of period a run covers."""
    every = FREQUENCY_MONTHS[frequency]
    return Period(day.year, (day.month - 1) // every * every + 1, every)


def parse_period(value: str) -> Period:
    m = _FORMS.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise PeriodError(str(value))
    year = int(m.group(1))
    if m.group(2):
        return Period(year, int(m.group(2)), 1)
    if m.group(3):
        return Period(year, (int(m.group(3)) - 1) * 3 + 1, 3)
    return Period(year, (int(m.group(4)) - 1) * 6 + 1, 6)


# --- the period chain: which periods may run, be approved or locked ---------------------------
# Pure rules on plain values (a run is anything with the attributes of ``ChainRun``); the
# royalty run use case reads the runs from the store and calls these.
SETTLED = ("approved", "locked")
NEXT_STATUS = {"approved": "calculated", "locked": "approved"}  # target -> the status before


class RunError(EngineError):
    """A run that must not happen (period locked, previous period not approved, ...)."""


class ChainRun(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def period(self) -> str: ...
    @property
    def period_start(self) -> dt.date: ...
    @property
    def period_end(self) -> dt.date: ...
    @property
    def status(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def previous_run_id(self) -> int | None: ...


R = TypeVar("R", bound=ChainRun)


def opening_run(current: Mapping[str, R], period: Period) -> R | None:
    """The run a period opens from: the current run of the latest earlier period."""
    earlier = [r for r in current.values() if r.period_end < period.start]
    return max(earlier, key=lambda r: r.period_end) if earlier else None


def check_chain(
    current: Mapping[str, R],
    period: Period,
    opened_from: int | None,
    *,
    doing: str,
    correcting: bool = False,
) -> R | None:
    """The periods of an organisation form one chain, each opening from the closing state of
    the one before: return the run ``period`` opens from, or refuse what would break it.
    ``current``: each period's current run (its latest version not superseded).

    - no gap: the period before must have been run (``period_gap``);
    - it must be approved or locked (``previous_not_approved``);
    - it must itself open from the current run before it: a period whose predecessor was
      rerun or corrected since must be rerun or corrected first (``stale_previous``);
    - ``opened_from`` (the run this one was computed from, when approving or locking) must
      still be that run (``stale_opening``: rerun it);
    - a period of another length overlapping an approved or locked run is refused
      (``period_overlaps``);
    - a period cannot be rerun under an approved or locked later period (only corrected
      after its lock): ``later_period_settled``."""
    for r in current.values():
        if (
            r.period != period.label
            and r.status in SETTLED
            and r.period_start <= period.end
            and r.period_end >= period.start
        ):
            raise RunError(
                "period_overlaps",
                f"{period.label} overlaps run {r.id} of period {r.period} ({r.status}); "
                "a period is run in one length",
            )
    if not correcting:
        later = sorted(
            (r for r in current.values() if r.period_start > period.end and r.status in SETTLED),
            key=lambda r: r.period_start,
        )
        if later:
            raise RunError(
                "later_period_settled",
                f"cannot {doing} {period.label}: the later period {later[0].period} is already "
                f"{later[0].status} (run {later[0].id}) and opens from this one; "
                "correct a period after its lock instead (--correction)",
            )
    previous = opening_run(current, period)
    if previous is None:
        if opened_from is not None:
            raise RunError(
                "stale_opening",
                f"{period.label} was computed from run {opened_from}, which is no longer the "
                f"current run of its period: run {period.label} again",
            )
        return None
    if previous.period_end + dt.timedelta(days=1) != period.start:
        raise RunError(
            "period_gap",
            f"cannot {doing} {period.label}: the latest period run before it is "
            f"{previous.period} (ending {previous.period_end}); run the periods in between "
            f"first, in order",
            [{"previous_period": previous.period, "period_start": str(period.start)}],
        )
    if previous.status not in SETTLED:
        raise RunError(
            "previous_not_approved",
            f"cannot {doing} {period.label}: {previous.period} (run {previous.id}, version "
            f"{previous.version}) is {previous.status}; approve it first, as "
            f"{period.label} opens from its closing balances",
        )
    before = opening_run(current, parse_period(previous.period))
    if (before.id if before else None) != previous.previous_run_id:
        raise RunError(
            "stale_previous",
            f"cannot {doing} {period.label}: {previous.period} (run {previous.id}) opened from "
            f"run {previous.previous_run_id}, which is no longer the current run of its "
            f"period; rerun or correct {previous.period} first",
        )
    if opened_from is not None and opened_from != previous.id:
        raise RunError(
            "stale_opening",
            f"{period.label} was computed from run {opened_from}, but {previous.period}'s "
            f"current run is {previous.id}: run {period.label} again",
        )
    return previous


def check_rerun(period: Period, locked: Sequence[ChainRun], correction: str | None) -> None:
    """A locked period is not run again, only corrected (with a reason); a correction is only
    for a locked period (``period_locked``, ``not_locked``). ``locked``: the period's locked
    runs, oldest first."""
    if locked and correction is None:
        raise RunError(
            "period_locked",
            f"{period.label} is locked (run {locked[-1].id}, version {locked[-1].version}); "
            "a change after the lock is a correction: run again with --correction REASON",
        )
    if correction is not None and not locked:
        raise RunError(
            "not_locked", f"{period.label} is not locked: no correction needed, rerun it"
        )


def check_transition(run: ChainRun, to: str) -> bool:
    """Whether ``run`` may become ``to`` (calculated -> approved -> locked): False when it
    already is (a retried command finds its work done), ``bad_transition`` when it is not
    the status before."""
    if run.status == to:
        return False
    if run.status != NEXT_STATUS[to]:
        raise RunError(
            "bad_transition",
            f"run {run.id} ({run.period} v{run.version}) is {run.status}; only a "
            f"{NEXT_STATUS[to]} run can become {to}",
        )
    return True


def unended_override(
    period: Period, to: str, today: dt.date, allow_unended: str | None
) -> dict[str, str] | None:
    """A period is approved or locked only once it has ended (``Period.has_ended``); before,
    its run is a preview. ``allow_unended``, the reason for doing it anyway, is the explicit
    override: returned for the audit log and the ledger (None when the period has ended);
    without it, ``period_not_ended``."""
    if period.has_ended(today):
        return None
    reason = (allow_unended or "").strip()
    if not reason:
        raise RunError(
            "period_not_ended",
            f"{period.label} ends on {period.end.isoformat()} and today is "
            f"{today.isoformat()}: its run is a preview until then and cannot be {to}; to do "
            'it anyway, give the reason as an override (--allow-unended "why"), which is audited',
        )
    return {
        "rule": "period_not_ended",
        "period_end": period.end.isoformat(),
        "today": today.isoformat(),
        "reason": reason,
    }
