"""The analysts' warehouse: store -> reference Parquet -> ``dbt build`` -> one DuckDB file.

Under ``TUNEMANTRA_DATA_DIR``::

    warehouse/reference/<table>.parquet   the store's tables the marts need (written atomically)
    warehouse/tunemantra.duckdb           what analysts open (read-only)
    warehouse/.build/tunemantra.duckdb    a build in progress (removed if it fails)
    warehouse/.build/airflow/             the analytics_dbt DAG's build, between its tasks
    warehouse/target/, warehouse/logs/    dbt's artefacts and logs

DuckDB reads only files here (no SQLite or PostgreSQL scanner), so the reference tables are
exported through SQLAlchemy first; the lake and the royalty runs are read in place. Every build
writes a *new* DuckDB file and renames it over the old one, so a reader never sees a half-built
warehouse: a read-only connection opened before the swap keeps reading the previous build, one
opened after reads the new one. If a process holds the current file with a *write* lock (an
analyst who opened it read-write, a stray build), replacing it could pair its write-ahead log
with the wrong file: the swap waits for the lock (``lock_timeout`` seconds) and then fails with
``WarehouseLocked``, leaving the current file as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines import lake
from pipelines.layout import DataDir
from schemas.store.models import (
    Artist,
    Contract,
    IngestFile,
    Organisation,
    Payee,
    Release,
    SuspenseItem,
    Track,
)
from schemas.store.runs import RoyaltyRun

log = logging.getLogger(__name__)
DBT_DIR = Path(__file__).resolve().parent.parent / "dbt"
WAREHOUSE_FILE = DataDir(Path()).warehouse_file().name
EXACT = pa.decimal128(38, 12)
CENTS = pa.decimal128(38, 2)
I64, STR, DATE, BOOL = pa.int64(), pa.string(), pa.date32(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")


class WarehouseError(Exception):
    """A build that did not produce a warehouse (dbt failed, the file is held, ...)."""


class WarehouseLocked(WarehouseError):
    """Someone holds the warehouse file with a write lock: the swap waited, then gave up."""


# --- reference export ---------------------------------------------------------------------

Column = tuple[str, Any, pa.DataType]  # (name in Parquet, SQLAlchemy column, Arrow type)

REFERENCE: dict[str, tuple[type[Any], list[Column]]] = {
    "organisations": (
        Organisation,
        [
            ("org_id", Organisation.id, I64),
            ("slug", Organisation.slug, STR),
            ("name", Organisation.name, STR),
            ("default_currency", Organisation.default_currency, STR),
            ("created_at", Organisation.created_at, TS),
        ],
    ),
    "artists": (
        Artist,
        [
            ("artist_id", Artist.id, I64),
            ("org_id", Artist.org_id, I64),
            ("name", Artist.name, STR),
            ("kind", Artist.kind, STR),
            ("country", Artist.country, STR),
        ],
    ),
    "releases": (
        Release,
        [
            ("release_id", Release.id, I64),
            ("org_id", Release.org_id, I64),
            ("upc", Release.upc, STR),
            ("title", Release.title, STR),
            ("release_type", Release.release_type, STR),
            ("label_name", Release.label_name, STR),
            ("artist_id", Release.artist_id, I64),
            ("original_release_date", Release.original_release_date, DATE),
            ("genre", Release.genre, STR),
        ],
    ),
    "tracks": (
        Track,
        [
            ("track_id", Track.id, I64),
            ("org_id", Track.org_id, I64),
            ("release_id", Track.release_id, I64),
            ("isrc", Track.isrc, STR),
            ("title", Track.title, STR),
            ("version", Track.version, STR),
            ("artist_id", Track.artist_id, I64),
            ("duration_seconds", Track.duration_seconds, I64),
            ("explicit", Track.explicit, BOOL),
            ("disc_number", Track.disc_number, I64),
            ("track_number", Track.track_number, I64),
        ],
    ),
    "payees": (
        Payee,
        [
            ("payee_id", Payee.id, I64),
            ("org_id", Payee.org_id, I64),
            ("name", Payee.name, STR),
            ("artist_id", Payee.artist_id, I64),
            ("country", Payee.country, STR),
            ("statement_currency", Payee.statement_currency, STR),
            ("withholding_rate", Payee.withholding_rate, EXACT),
        ],
    ),
    "contracts": (
        Contract,
        [
            ("contract_id", Contract.id, I64),
            ("org_id", Contract.org_id, I64),
            ("payee_id", Contract.payee_id, I64),
            ("reference", Contract.reference, STR),
            ("name", Contract.name, STR),
            ("basis", Contract.basis, STR),
            ("currency", Contract.currency, STR),
            ("cross_collateral_group", Contract.cross_collateral_group, STR),
            ("reserve_rate", Contract.reserve_rate, EXACT),
            ("minimum_payment", Contract.minimum_payment, CENTS),
            ("statement_frequency", Contract.statement_frequency, STR),
            ("start_date", Contract.start_date, DATE),
            ("end_date", Contract.end_date, DATE),
        ],
    ),
    "royalty_runs": (
        RoyaltyRun,
        [
            ("run_id", RoyaltyRun.id, I64),
            ("org_id", RoyaltyRun.org_id, I64),
            ("period", RoyaltyRun.period, STR),
            ("period_start", RoyaltyRun.period_start, DATE),
            ("period_end", RoyaltyRun.period_end, DATE),
            ("version", RoyaltyRun.version, I64),
            ("status", RoyaltyRun.status, STR),
            ("currency", RoyaltyRun.currency, STR),
            ("supersedes_id", RoyaltyRun.supersedes_id, I64),
            ("created_at", RoyaltyRun.created_at, TS),
            ("locked_at", RoyaltyRun.locked_at, TS),
        ],
    ),
    "ingest_files": (
        IngestFile,
        [
            ("file_id", IngestFile.id, I64),
            ("org_id", IngestFile.org_id, I64),
            ("original_name", IngestFile.original_name, STR),
            ("format", IngestFile.format, STR),
            ("status", IngestFile.status, STR),
            ("reporting_period", IngestFile.reporting_period, STR),
            ("lines_read", IngestFile.lines_read, I64),
            ("lines_accepted", IngestFile.lines_accepted, I64),
            ("lines_rejected", IngestFile.lines_rejected, I64),
            ("lines_matched", IngestFile.lines_matched, I64),
            ("lines_suspense", IngestFile.lines_suspense, I64),
            ("quarantine_code", IngestFile.quarantine_code, STR),
            ("received_at", IngestFile.received_at, TS),
        ],
    ),
    "suspense_items": (
        SuspenseItem,
        [
            ("suspense_item_id", SuspenseItem.id, I64),
            ("org_id", SuspenseItem.org_id, I64),
            ("kind", SuspenseItem.kind, STR),
            ("key", SuspenseItem.key, STR),
            ("reason", SuspenseItem.reason, STR),
            ("title", SuspenseItem.title, STR),
            ("artist", SuspenseItem.artist, STR),
            ("lines", SuspenseItem.lines, I64),
            ("quantity", SuspenseItem.quantity, I64),
            ("first_period", SuspenseItem.first_period, STR),
            ("last_period", SuspenseItem.last_period, STR),
            ("status", SuspenseItem.status, STR),
        ],
    ),
}

# JSON columns flattened to one row per (owner, currency[, measure]).
FILE_TOTALS = pa.schema(
    [
        ("file_id", I64),
        ("org_id", I64),
        ("currency", STR),
        ("read_amount", EXACT),
        ("accepted_amount", EXACT),
        ("rejected_amount", EXACT),
        ("declared_amount", EXACT),
    ]
)
RUN_TOTALS = pa.schema(
    [("run_id", I64), ("org_id", I64), ("currency", STR), ("measure", STR), ("amount", CENTS)]
)
COMMITTED_FILES = pa.schema([("org_id", I64), ("file_id", I64)])
SUSPENSE_AMOUNTS = pa.schema(
    [("suspense_item_id", I64), ("org_id", I64), ("currency", STR), ("amount", EXACT)]
)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _json(value: Any) -> dict[str, Any]:
    return dict(value or {})


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_reference(factory: sessionmaker[Session], data_dir: Path) -> dict[str, int]:
    """Write the reference tables to ``warehouse/reference/*.parquet``; rows per table."""
    out = DataDir(data_dir).warehouse_reference()
    counts: dict[str, int] = {}
    with factory() as session:
        for name, (model, columns) in REFERENCE.items():
            schema = pa.schema([(c, t) for c, _, t in columns])
            rows = session.execute(
                sa.select(*(col for _, col, _ in columns)).order_by(model.id)
            ).all()
            data = {c: [_plain(r[i]) for r in rows] for i, (c, _, _) in enumerate(columns)}
            write_table(pa.table(data, schema=schema), out / f"{name}.parquet")
            counts[name] = len(rows)
        file_rows = []
        for fid, org, totals in session.execute(
            sa.select(IngestFile.id, IngestFile.org_id, IngestFile.totals).order_by(IngestFile.id)
        ):
            for cur, t in sorted(_json(totals).items()):
                file_rows.append(
                    {
                        "file_id": fid,
                        "org_id": org,
                        "currency": cur,
                        **{f"{k}_amount": _dec(t.get(k)) for k in _FILE_MEASURES},
                    }
                )
        write_table(
            pa.Table.from_pylist(file_rows, FILE_TOTALS), out / "ingest_file_totals.parquet"
        )
        # the files whose lake parts count (lake.committed_file_ids): the lake's staging
        # models read only these, never the parts of an ingestion not committed (or killed)
        committed = [
            {"org_id": org, "file_id": fid}
            for org in session.scalars(sa.select(Organisation.id).order_by(Organisation.id))
            for fid in sorted(lake.committed_file_ids(session, org))
        ]
        write_table(
            pa.Table.from_pylist(committed, COMMITTED_FILES), out / "committed_files.parquet"
        )
        run_rows = [
            {"run_id": rid, "org_id": org, "currency": cur, "measure": k, "amount": _dec(v)}
            for rid, org, totals in session.execute(
                sa.select(RoyaltyRun.id, RoyaltyRun.org_id, RoyaltyRun.totals).order_by(
                    RoyaltyRun.id
                )
            )
            for cur, t in sorted(_json(totals).items())
            for k, v in sorted(t.items())
        ]
        write_table(pa.Table.from_pylist(run_rows, RUN_TOTALS), out / "royalty_run_totals.parquet")
        sus_rows = [
            {"suspense_item_id": sid, "org_id": org, "currency": cur, "amount": _dec(v)}
            for sid, org, amounts in session.execute(
                sa.select(SuspenseItem.id, SuspenseItem.org_id, SuspenseItem.amounts).order_by(
                    SuspenseItem.id
                )
            )
            for cur, v in sorted(_json(amounts).items())
        ]
        write_table(
            pa.Table.from_pylist(sus_rows, SUSPENSE_AMOUNTS), out / "suspense_item_amounts.parquet"
        )
    counts.update(
        committed_files=len(committed),
        ingest_file_totals=len(file_rows),
        royalty_run_totals=len(run_rows),
        suspense_item_amounts=len(sus_rows),
    )
    return counts


_FILE_MEASURES = ("read", "accepted", "rejected", "declared")


# --- build and swap -----------------------------------------------------------------------


@dataclass
class BuildResult:
    path: Path
    seconds: float
    reference_rows: dict[str, int] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=dict)  # dbt status -> count

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "seconds": self.seconds,
            "reference_rows": self.reference_rows,
            "results": self.results,
        }


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """One build at a time per data dir (a second one waits)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dbt_env(data_dir: Path, build_path: Path, threads: int) -> dict[str, str]:
    """What dbt reads (``env_var`` in ``dbt/profiles.yml`` and ``read_source``): written for the
    in-process dbt run only, from the arguments (the entry points take them from Settings);
    nothing here reads the environment for its own use."""
    return {
        "TUNEMANTRA_DATA_DIR": str(data_dir.resolve()),
        "TUNEMANTRA_WAREHOUSE_BUILD_PATH": str(build_path),
        "TUNEMANTRA_DBT_THREADS": str(threads),
    }


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dbt(args: Sequence[str], *, data_dir: Path, build_path: Path, threads: int = 2) -> Any:
    """Run one dbt command in-process against ``build_path``; raise ``WarehouseError`` with
    dbt's own messages (model, test, column) when it fails."""
    from dbt.cli.main import dbtRunner

    folder = DataDir(data_dir.resolve()).warehouse_root()
    common = [
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target-path",
        str(folder / "target"),
        "--log-path",
        str(folder / "logs"),
    ]
    with _environ(_dbt_env(data_dir, build_path, threads)):
        try:
            res = dbtRunner().invoke([*args, *common, "--quiet"])
        finally:
            _close_dbt_duckdb()
    if not res.success:
        raise WarehouseError(_dbt_failure(res))
    return res.result


def _close_dbt_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB instance open in the process after ``invoke`` (a class
    attribute); close it so the file's lock is released before the swap."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV
    if env is not None:
        env.close()
        DuckDBConnectionManager._ENV = None


def _dbt_failure(res: Any) -> str:
    if res.exception is not None:
        return f"dbt failed: {res.exception}"
    problems = [
        f"{r.node.unique_id}: {r.status}: {r.message}"
        for r in (res.result or [])
        if str(r.status) in ("error", "fail", "runtime error")
    ]
    return "dbt build failed: " + "; ".join(problems[:10])


def swap_in(new: Path, target: Path, *, lock_timeout: float = 10.0) -> None:
    """Rename ``new`` over ``target`` once no process holds ``target`` with a write lock."""
    import duckdb

    deadline = time.monotonic() + lock_timeout
    while target.exists():
        try:
            duckdb.connect(str(target), read_only=True).close()
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLocked(
                    f"warehouse file {target} is held by another process with a write lock; "
                    f"gave up after {lock_timeout:g} s and left it unchanged "
                    f"(the new build was discarded). {_first_line(exc)}"
                ) from None
            time.sleep(0.2)
    wal = target.with_name(target.name + ".wal")
    if wal.exists():
        raise WarehouseLocked(f"{wal} exists: a writer did not close {target}; not replacing it")
    os.replace(new, target)


AIRFLOW_SLOT = "airflow"  # the analytics_dbt DAG's build folder (one DAG run at a time)


def build_path(data_dir: Path, slot: str = "") -> Path:
    """Where a finished build waits for ``publish`` to swap it in: ``.build/<slot>/``."""
    return DataDir(data_dir.resolve()).warehouse_build(slot)


def _summary(results: Any) -> dict[str, int]:
    summary: dict[str, int] = {}
    for r in results or []:
        summary[str(r.status)] = summary.get(str(r.status), 0) + 1
    return summary


# A build in steps (the Airflow DAG: prepare -> dbt_build -> publish). Each step holds the
# data dir's build lock, so a step never overlaps a `tunemantra warehouse build` or another
# step. Only ``dbt_build`` writes a DuckDB file, in one `dbt build` (seeds, models and their
# tests in dependency order, a failing test skips what depends on it) into a file of its own;
# the file reaches ``build_path`` (by a rename) only once dbt passed, and only a file there
# is ever swapped in.


def prepare(
    factory: sessionmaker[Session], data_dir: Path, *, slot: str = AIRFLOW_SLOT
) -> dict[str, int]:
    """Export the store's reference tables and clear the slot (builds left by failed runs)."""
    folder = DataDir(data_dir.resolve()).warehouse_root()
    with _build_lock(folder):
        counts = export_reference(factory, data_dir)
        shutil.rmtree(build_path(data_dir, slot).parent, ignore_errors=True)
    return counts


def dbt_build(
    data_dir: Path, *, slot: str = AIRFLOW_SLOT, threads: int = 2, select: Sequence[str] = ()
) -> dict[str, int]:
    """One `dbt build` into a fresh file; once it passed, move it where ``publish`` takes it.
    Returns dbt's results per status. A failure leaves nothing to publish."""
    done = build_path(data_dir, slot)
    work = done.parent / "building" / WAREHOUSE_FILE  # same name: views name their catalog after it
    with _build_lock(DataDir(data_dir.resolve()).warehouse_root()):
        done.unlink(missing_ok=True)
        work.parent.mkdir(parents=True, exist_ok=True)
        try:
            _remove_duckdb(work)
            args = ["build"] + (["--select", *select] if select else [])
            results = run_dbt(args, data_dir=data_dir, build_path=work, threads=threads)
            for r in results or []:
                log.info("dbt %s: %s (%.1f s)", r.node.unique_id, r.status, r.execution_time)
            _checkpoint(work)
            os.replace(work, done)
        finally:
            _remove_duckdb(work)
    return _summary(results)


def publish(data_dir: Path, *, slot: str = "", lock_timeout: float = 60.0) -> str:
    """Swap a finished build (see ``dbt_build``) in; returns the warehouse path."""
    layout = DataDir(data_dir.resolve())
    new = layout.warehouse_build(slot)
    with _build_lock(layout.warehouse_root()):
        if not new.exists():
            raise WarehouseError(f"no finished build at {new}: nothing to swap in")
        _checkpoint(new)
        swap_in(new, layout.warehouse_file(), lock_timeout=lock_timeout)
    return str(layout.warehouse_file())


def _remove_duckdb(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def _checkpoint(path: Path) -> None:
    """Fold the build's write-ahead log into the file: the WAL does not move with it."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute("checkpoint")
    if path.with_name(path.name + ".wal").exists():
        raise WarehouseError(f"{path}: the build left a write-ahead log behind")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def build(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    threads: int = 2,
    lock_timeout: float = 10.0,
    select: Sequence[str] = (),
    export: bool = True,
    before_swap: Callable[[Path], None] | None = None,
    docs: bool = False,
) -> BuildResult:
    """Export the reference tables, ``dbt build`` into a new file, swap it in."""
    started = time.perf_counter()
    layout = DataDir(data_dir.resolve())
    with _build_lock(layout.warehouse_root()):
        counts = export_reference(factory, data_dir) if export else {}
        # Same file name as the target (views name their catalog after the file's stem) and
        # a fixed path (builds are serialised by the lock), so dbt keeps its partial parse.
        new = layout.warehouse_build()
        new.parent.mkdir(exist_ok=True)
        new.unlink(missing_ok=True)
        try:
            args = ["build"] + (["--select", *select] if select else [])
            results = run_dbt(args, data_dir=data_dir, build_path=new, threads=threads)
            if docs:
                run_dbt(["docs", "generate", "--static"], data_dir=data_dir, build_path=new)
            _checkpoint(new)
            if before_swap is not None:
                before_swap(new)
            swap_in(new, layout.warehouse_file(), lock_timeout=lock_timeout)
        finally:
            _remove_duckdb(new)
    return BuildResult(
        path=layout.warehouse_file(),
        seconds=round(time.perf_counter() - started, 2),
        reference_rows=counts,
        results=_summary(results),
    )


def build_docs(factory: sessionmaker[Session], data_dir: Path) -> Path:
    """Build the warehouse and its dbt docs, one static HTML file (``--static``) in
    ``warehouse/docs/index.html`` (the catalog read from the build before the swap)."""
    build(factory, data_dir, docs=True)
    folder = DataDir(data_dir.resolve()).warehouse_root()
    out = folder / "docs"
    out.mkdir(exist_ok=True)
    static = folder / "target" / "static_index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_bytes(static.read_bytes())
    os.replace(tmp, out / "index.html")
    return out / "index.html"
