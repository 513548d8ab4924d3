"""A process appending to the audit ledger, for the concurrency test in test_royalty_run.

Its own module, importing only the ledger: each spawned process imports this file, not the
test module and everything the test module imports (about 2 CPU-s per process)."""

from __future__ import annotations

from pathlib import Path

from pipelines.royalty import audit_ledger

ENTRIES = 25


def append_many(data: Path, writer: int) -> None:
    for n in range(ENTRIES):
        audit_ledger.append(data, 1, "published", writer=writer, n=n)
