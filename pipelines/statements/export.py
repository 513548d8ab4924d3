"""Render a run's statements into a folder, all or nothing, with a manifest.

Layout (``out_dir``)::

    payee<id>/statement_<org>_<period>_v<version>_payee<id>_<CCY>.pdf|xlsx|csv|json
    payee<id>/invoice_<org>_<period>_v<version>_payee<id>_<CCY>.pdf   (self-billing only)
    payee<id>/credit_note_<org>_<period>_v<version>_payee<id>_<CCY>.pdf   (a correction's
        credit of the earlier version's invoice)
    manifest.json   (every file: path, SHA-256, size, payee, statement; written last)

Everything is written into a hidden staging folder beside ``out_dir`` and renamed into place
at the end, so a failed export leaves nothing half-written. Re-exporting a run whose files
are already there with the same manifest changes nothing; a folder holding anything else is
refused (``out_dir_not_empty``), never replaced. Rendering can be spread over
processes (``workers``); files are written by this process only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pipelines.statements import FORMATS, render, render_credit_note, render_invoice
from pipelines.statements.data import Statement, StatementError, iter_statements

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportedFile:
    path: str  # relative to the export folder, always with "/"
    kind: str  # statement | invoice | credit_note
    format: str
    payee_id: int
    statement_id: int
    currency: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ExportResult:
    run_id: int
    folder: Path
    files: list[ExportedFile]
    unchanged: bool  # the folder already held exactly these files

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST


def payee_folder(statement: Statement) -> str:
    return f"payee{statement.payee_id}"


def statement_files(
    statement: Statement, formats: Sequence[str]
) -> list[tuple[str, str, str, bytes]]:
    """(relative path, kind, format, bytes) of every file of one statement."""
    folder = payee_folder(statement)
    out = [
        (f"{folder}/{statement.file_stem}.{fmt}", "statement", fmt, render(statement, fmt))
        for fmt in formats
    ]
    invoice = render_invoice(statement)
    if invoice is not None:
        out.append((f"{folder}/{statement.invoice_stem}.pdf", "invoice", "pdf", invoice))
    credit = render_credit_note(statement)
    if credit is not None:
        out.append((f"{folder}/{statement.credit_note_stem}.pdf", "credit_note", "pdf", credit))
    return out


def _render_chunk(
    args: tuple[list[Statement], tuple[str, ...]],
) -> list[list[tuple[str, str, str, bytes]]]:
    statements, formats = args
    return [statement_files(s, formats) for s in statements]


def render_all(
    statements: Iterable[Statement], formats: Sequence[str], workers: int = 1
) -> Iterator[tuple[Statement, list[tuple[str, str, str, bytes]]]]:
    """Every statement's files, in input order; ``workers`` > 1 renders in processes, with at
    most four batches per worker in flight (memory stays flat however many payees) and only
    the files sent back."""
    formats = tuple(formats)
    if workers <= 1:
        for s in statements:
            yield s, statement_files(s, formats)
        return
    it = iter(statements)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[list[Statement], Future[list[list[tuple[str, str, str, bytes]]]]]]
        pending = deque()
        while True:
            batch = list(islice(it, 8))
            if batch:
                pending.append((batch, pool.submit(_render_chunk, (batch, formats))))
            if not pending:
                return
            if len(pending) >= 4 * workers or not batch:
                done, future = pending.popleft()
                yield from zip(done, future.result(), strict=True)


def manifest_body(run_id: int, files: list[ExportedFile]) -> bytes:
    doc: dict[str, Any] = {
        "run_id": run_id,
        "files": [asdict(f) for f in sorted(files, key=lambda f: f.path)],
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def write_files(
    statements: Iterable[Statement],
    stage: Path,
    formats: Sequence[str],
    workers: int = 1,
) -> list[ExportedFile]:
    files: list[ExportedFile] = []
    for statement, rendered in render_all(statements, formats, workers):
        for rel, kind, fmt, body in rendered:
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            files.append(
                ExportedFile(
                    rel,
                    kind,
                    fmt,
                    statement.payee_id,
                    statement.statement_id,
                    statement.currency,
                    hashlib.sha256(body).hexdigest(),
                    len(body),
                )
            )
    return files


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(
            f"unknown statement format(s) {unknown or formats!r}; use {', '.join(FORMATS)}"
        )
    return tuple(f for f in FORMATS if f in formats)


def _check_target(out_dir: Path, run_id: int) -> None:
    """Only an empty (or new) folder, or this run's own earlier export, may be written: an
    export replaces the whole folder, so anything else in it would be lost."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise StatementError("out_dir_not_a_folder", f"{out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    manifest = out_dir / MANIFEST
    try:
        ours = json.loads(manifest.read_text()).get("run_id") == run_id
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise StatementError(
            "out_dir_not_empty",
            f"{out_dir} already holds other files (not this run's statements); "
            "export into an empty or new folder",
        )


def export_statements(
    statements: Iterable[Statement],
    out_dir: Path,
    *,
    run_id: int,
    formats: Sequence[str] = FORMATS,
    workers: int = 1,
) -> ExportResult:
    formats = _check_formats(formats)
    _check_target(out_dir, run_id)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex}"
    try:
        files = write_files(statements, stage, formats, workers)
        body = manifest_body(run_id, files)
        (stage / MANIFEST).write_bytes(body)
        final = out_dir / MANIFEST
        if final.exists() and final.read_bytes() == body:
            return ExportResult(run_id, out_dir, files, unchanged=True)
        if out_dir.exists():
            # Same run, different bytes (only possible for a run re-calculated before it
            # was approved): swap the whole folder, never mix the two.
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex}"
            os.replace(out_dir, old)
            os.replace(stage, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out_dir)
        return ExportResult(run_id, out_dir, files, unchanged=False)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_run(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    run_id: int,
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    payee_ids: list[int] | None = None,
    workers: int = 1,
) -> ExportResult:
    """Render the statements of a run (or of some payees) into ``out_dir``."""
    statements = iter_statements(factory, data_dir, run_id=run_id, payee_ids=payee_ids)
    return export_statements(statements, out_dir, run_id=run_id, formats=formats, workers=workers)
