"""The audit ledger: an append-only, hash-chained record of every royalty run event.

One JSON object per line in ``audit/org=<id>/ledger.jsonl``. Each entry carries ``prev`` (the
previous entry's ``hash``; the first entry's is 64 zeros) and ``hash``, the SHA-256 of the
entry's canonical JSON without ``hash``. A ``calculated`` entry lists every file the run
read and wrote with its SHA-256, so ``verify`` detects any change to any past entry (the chain
breaks) and to any output file (its hash no longer matches).

Appending rewrites the file through a temporary name and a rename, so a crash never leaves a
half-written entry, under an exclusive lock on ``ledger.lock`` beside it, so two writers (two
processes running, approving or publishing at once) never number two entries alike. Entries
are appended once the store has committed what they record, the lock held from before the
commit to after the append (``held``); ``verification.verify_store`` checks the ledger against
the store (a run, approval or lock with no entry, or an entry the store contradicts), so a
truncated or deleted ledger does not pass. A process killed between its commit and its append
leaves a committed event with no entry: ``record.recover`` (run by the next royalty
command, or ``tunemantra audit repair``) appends it from the store, marked ``recovered`` —
the chain only ever grows, no entry is rewritten.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import lake
from pipelines.layout import DataDir

GENESIS = "0" * 64


def ledger_path(data_dir: Path, org_id: int) -> Path:
    return DataDir(data_dir).audit_ledger(org_id)


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read(data_dir: Path, org_id: int) -> list[dict[str, Any]]:
    path = ledger_path(data_dir, org_id)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold the ledger's lock file (``flock``: released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("ledger.lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def append(data_dir: Path, org_id: int, event: str, **fields: Any) -> dict[str, Any]:
    """Append one entry (after checking the chain so far) and return it."""
    with _exclusive(ledger_path(data_dir, org_id)):
        return _append(data_dir, org_id, event, **fields)


@contextmanager
def held(data_dir: Path, org_id: int) -> Iterator[Callable[..., dict[str, Any]]]:
    """Hold the ledger's lock across a store commit and the append that records it, and
    yield the append (``append(event, **fields)``). Refuses up front (``LedgerError``) when
    the chain is broken, so nothing is committed that the ledger could not record. While it
    is held, a committed run, approval or lock with no entry can only be one whose process
    died between its commit and its append: ``record.recover`` appends it then."""
    with _exclusive(ledger_path(data_dir, org_id)):
        problems = _chain_problems(read(data_dir, org_id))
        if problems:
            raise LedgerError(f"audit ledger of org {org_id} is broken: {problems[0]['message']}")
        yield functools.partial(_append, data_dir, org_id)


def _append(data_dir: Path, org_id: int, event: str, **fields: Any) -> dict[str, Any]:
    entries = read(data_dir, org_id)
    problems = _chain_problems(entries)
    if problems:
        raise LedgerError(f"audit ledger of org {org_id} is broken: {problems[0]['message']}")
    entry: dict[str, Any] = {
        "seq": len(entries) + 1,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "org_id": org_id,
        "event": event,
        **fields,
        "prev": entries[-1]["hash"] if entries else GENESIS,
    }
    entry["hash"] = _digest(entry)
    path = ledger_path(data_dir, org_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ledger.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            if path.exists():
                f.write(path.read_text())
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return entry


class LedgerError(RuntimeError):
    """The ledger's hash chain is broken: nothing more may be appended to it."""


def _chain_problems(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    problems = []
    prev = GENESIS
    for i, entry in enumerate(entries, start=1):
        if entry.get("seq") != i:
            problems.append({"seq": i, "code": "sequence", "message": f"entry {i} out of order"})
        if entry.get("prev") != prev:
            problems.append(
                {"seq": i, "code": "chain", "message": f"entry {i} does not follow entry {i - 1}"}
            )
        if _digest(entry) != entry.get("hash"):
            problems.append(
                {"seq": i, "code": "tampered", "message": f"entry {i} was changed after writing"}
            )
        prev = entry.get("hash", "")
    return problems


def verify(data_dir: Path, org_id: int) -> list[dict[str, Any]]:
    """Every problem found: a broken chain, a changed entry, a missing or changed file."""
    entries = read(data_dir, org_id)
    problems = _chain_problems(entries)
    for entry in entries:
        for rel, sha in sorted((entry.get("files") or {}).items()):
            path = DataDir(data_dir).resolve(rel)
            if not path.exists():
                problems.append(
                    {
                        "seq": entry["seq"],
                        "code": "missing_file",
                        "file": rel,
                        "message": f"{rel} (run {entry.get('run_id')}) is missing",
                    }
                )
            elif lake.sha256_file(path) != sha:
                problems.append(
                    {
                        "seq": entry["seq"],
                        "code": "changed_file",
                        "file": rel,
                        "message": f"{rel} (run {entry.get('run_id')}) changed after the run",
                    }
                )
    return problems


def orgs_with_ledgers(data_dir: Path) -> list[int]:
    root = DataDir(data_dir).audit_root()
    return sorted(
        int(p.parent.name.split("=", 1)[1]) for p in root.glob("org=*/ledger.jsonl") if p.is_file()
    )
