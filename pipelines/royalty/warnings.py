"""The accountant's warnings (``royalty_engine.warnings``) for a period before it is run, or
for a recorded run, from exactly what the run reads: the terms snapshot (with the contract
terms in force on the period's first day) and the period's committed lake files."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from pipelines.royalty.snapshot import lake_files, scan_lines, snapshot
from pipelines.royalty.verification import open_run
from royalty_engine.periods import RunError, parse_period
from royalty_engine.warnings import RunWarning, period_warnings


def warnings_for_period(
    factory: sessionmaker[Session], data_dir: Path, *, org_id: int, period: str
) -> list[RunWarning]:
    """What a run of ``period`` would warn about, from the store and the lake as they are."""
    p = parse_period(period)
    with factory() as session:
        terms = snapshot(session, org_id, as_of=p.start)
    files = lake_files(factory, data_dir, org_id, p)
    return period_warnings(scan_lines(files), terms, p)


def warnings_for_run(
    factory: sessionmaker[Session], data_dir: Path, *, run_id: int, org_id: int | None = None
) -> list[RunWarning]:
    """The warnings of a recorded run, from its own snapshot and input files (``org_id``:
    refused, as missing, if the run is another organisation's)."""
    past = open_run(factory, data_dir, run_id)
    if org_id is not None and past.org_id != org_id:
        raise RunError("run_missing", f"no run {run_id}")
    return period_warnings(past.lines(data_dir), past.terms(), past.period)
