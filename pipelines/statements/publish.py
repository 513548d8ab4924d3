"""Publish a run's statements to the organisation's outbound drops (statement targets).

Only an *approved* or *locked* run is published. Its statements are first exported on this
machine (``DataDir.statements``); then each enabled target receives, inside the drop::

    <period>/v<version>/payee<id>/<statement and invoice files>
    <period>/v<version>/manifest.json   (written last: every file's path, SHA-256 and size)

A label-wide target gets every payee's folder, a payee target only that payee's files, and
each target only the formats it lists (self-billing invoices come with ``pdf``). An
organisation without any target gets a local one, ``local``, at
``<data dir>/outbound/org=<slug>``.

A drop without ``manifest.json`` is not published: the manifest goes up only after every file
did. Uploads are retried with exponential back-off on connection errors; when the retries run
out the target's publication is ``failed`` (with a machine-readable error) and the next target
is tried. Publishing is idempotent: the manifest's bytes depend only on the run and the
target, so re-publishing finds the same manifest and files remotely and uploads nothing
(``unchanged``). A remote file or manifest with *different* content is never replaced
(``refused``, ``remote_differs``). A correction is a new version, so it goes to its own
``v<version>`` folder and earlier drops stay as they were.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.drops import (
    Drop,
    DropAuthError,
    LocalDrop,
    parse_drop_url,
)
from pipelines.connections import public_url
from pipelines.layout import DataDir
from pipelines.royalty import audit_ledger
from pipelines.statements import FORMATS
from pipelines.statements.data import StatementError
from pipelines.statements.export import (
    MANIFEST,
    ExportedFile,
    export_run,
)
from royalty_engine.periods import parse_period
from schemas.store import db, orgs
from schemas.store.models import Organisation
from schemas.store.runs import RoyaltyRun, RunStatus
from schemas.store.statements import PublicationStatus, StatementPublication, StatementTarget

log = logging.getLogger(__name__)

DEFAULT_TARGET = "local"
DROP_MANIFEST = "manifest.json"
DROP_SCHEMA = "tunemantra.statement-drop/1"
PUBLISHABLE = (RunStatus.APPROVED, RunStatus.LOCKED)
RETRIES = 4  # tries per upload (the first one included)
BACKOFF = 2.0  # seconds before the second try; doubled before each further one

OpenDrop = Callable[[str, "str | None"], Drop]


class PublishError(StatementError):
    """Publishing that cannot start (run not approved, no target, export missing)."""


@dataclass(frozen=True)
class PublicationResult:
    """What happened at one target."""

    target: str
    url: str  # without any password
    status: str  # published | unchanged | failed | refused
    folder: str  # inside the target: <period>/v<version>
    files: int
    manifest_sha256: str
    error: dict[str, Any] | None = None
    run_id: int = 0
    period: str = ""
    version: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("published", "unchanged")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRef:
    run_id: int
    org_id: int
    org_slug: str
    period: str
    version: int
    status: str


@dataclass(frozen=True)
class Target:
    target_id: int
    name: str
    url: str
    secret_env: str | None
    payee_id: int | None
    formats: tuple[str, ...]


@dataclass
class _Plan:
    """What one target is to hold: its files (from the local export) and its manifest."""

    folder: str
    files: list[ExportedFile]
    manifest: bytes
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.manifest).hexdigest()


class _Refused(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


class _Failed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


# --- the run and its targets --------------------------------------------------------------------
def find_run(
    factory: sessionmaker[Session],
    *,
    org_id: int,
    period: str,
    version: int | None = None,
    publishable: bool = True,
) -> RunRef:
    """The period's latest run (or ``version``); unless approved or locked it is refused
    (``publishable=False``: any run, for a preview export)."""
    label = parse_period(period).label
    with factory() as session:
        org = session.get(Organisation, org_id)
        query = sa.select(RoyaltyRun).where(RoyaltyRun.org_id == org_id, RoyaltyRun.period == label)
        if version is not None:
            query = query.where(RoyaltyRun.version == version)
        run = session.scalars(query.order_by(RoyaltyRun.version.desc()).limit(1)).first()
        if org is None or run is None:
            which = f"{label}" + ("" if version is None else f" v{version}")
            raise PublishError(
                "run_missing", f"no run for {which}: run `tunemantra royalty run` first"
            )
        ref = RunRef(run.id, org_id, org.slug, run.period, run.version, run.status.value)
    if not publishable:
        return ref
    if ref.status == RunStatus.SUPERSEDED:
        raise PublishError(
            "run_superseded",
            f"run {ref.run_id} ({ref.period} v{ref.version}) is superseded by a later version; "
            "publish the latest version instead",
        )
    if ref.status not in PUBLISHABLE:
        raise PublishError(
            "run_not_approved",
            f"run {ref.run_id} ({ref.period} v{ref.version}) is {ref.status}; only an approved "
            f"or locked run is published: `tunemantra royalty approve --org {ref.org_slug} "
            f"--period {ref.period}` first",
        )
    return ref


def _as_target(row: StatementTarget) -> Target:
    return Target(
        row.id,
        row.name,
        row.url,
        row.secret_env,
        row.payee_id,
        tuple(f for f in FORMATS if f in (row.formats or [])),
    )


def targets(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    org_slug: str,
    names: Sequence[str] | None = None,
    actor: str = "system",
) -> tuple[list[Target], tuple[str, ...]]:
    """The organisation's enabled targets (or those named), and the formats to export: every
    format an enabled or chosen target takes, so the local export stays the same whichever
    targets one publication picks. Creates the default ``local`` target (every format) when
    the organisation has none at all."""
    with db.transaction(factory, actor=actor) as session:
        rows = list(
            session.scalars(
                sa.select(StatementTarget)
                .where(StatementTarget.org_id == org_id)
                .order_by(StatementTarget.name)
            )
        )
        if not rows:
            row = StatementTarget(
                org_id=org_id,
                name=DEFAULT_TARGET,
                url=str(DataDir(data_dir).outbound(org_slug)),
                secret_env=None,
                payee_id=None,
                formats=list(FORMATS),
                enabled=True,
            )
            session.add(row)
            session.flush()
            rows = [row]
        if names:
            by_name = {r.name: r for r in rows}
            missing = sorted(set(names) - set(by_name))
            if missing:
                raise PublishError(
                    "target_missing",
                    f"no statement target {', '.join(missing)} (known: {', '.join(by_name)}); "
                    "add one with `tunemantra statements target add`",
                )
            chosen = [by_name[n] for n in dict.fromkeys(names)]
        else:
            chosen = [r for r in rows if r.enabled]
        if not chosen:
            raise PublishError(
                "no_targets", "every statement target of the organisation is disabled"
            )
        every = [_as_target(r) for r in rows if r.enabled or r in chosen]
        return [_as_target(r) for r in chosen], formats_for(every)


def formats_for(chosen: Sequence[Target]) -> tuple[str, ...]:
    """Every format some target takes, in ``FORMATS`` order."""
    wanted = {f for t in chosen for f in t.formats}
    if not wanted:
        raise PublishError("no_formats", "no statement target lists any format")
    return tuple(f for f in FORMATS if f in wanted)


# --- the local export ---------------------------------------------------------------------------
def exported_files(folder: Path, run_id: int) -> list[ExportedFile]:
    """The files an export folder's manifest lists, each checked on disk (SHA-256)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise PublishError("export_missing", f"no statement export in {folder}")
    doc = json.loads(manifest.read_bytes())
    if doc.get("run_id") != run_id:
        raise PublishError("export_mismatch", f"{manifest} is the export of another run")
    files = [ExportedFile(**f) for f in doc["files"]]
    for f in files:
        path = folder / f.path
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != f.sha256:
            raise PublishError(
                "export_changed", f"{path} is missing or changed since the export; export again"
            )
    return files


def ensure_export(
    factory: sessionmaker[Session],
    data_dir: Path,
    run: RunRef,
    formats: Sequence[str],
    *,
    render: bool = True,
    workers: int = 1,
) -> tuple[Path, list[ExportedFile]]:
    """The run's statements on this machine in (at least) ``formats``: rendered and compared
    with what is there (``render``), or only read back from the export's manifest."""
    folder = DataDir(data_dir).statements(run.org_id, run.period, run.version)
    if render:
        result = export_run(
            factory, data_dir, run_id=run.run_id, out_dir=folder, formats=formats, workers=workers
        )
        return folder, result.files
    files = exported_files(folder, run.run_id)
    missing = sorted(set(formats) - {f.format for f in files if f.kind == "statement"})
    if missing:
        raise PublishError(
            "export_incomplete", f"the export in {folder} lacks {', '.join(missing)}"
        )
    return folder, files


# --- one target ---------------------------------------------------------------------------------
def drop_folder(run: RunRef) -> str:
    return f"{run.period}/v{run.version}"


def plan_for(run: RunRef, target: Target, files: Sequence[ExportedFile]) -> _Plan:
    """The files ``target`` receives and its drop manifest (deterministic bytes)."""
    mine = [
        f
        for f in files
        if (target.payee_id is None or f.payee_id == target.payee_id)
        and (f.format in target.formats if f.kind == "statement" else "pdf" in target.formats)
    ]
    mine.sort(key=lambda f: f.path)
    folder = drop_folder(run)
    doc = {
        "schema": DROP_SCHEMA,
        "org": run.org_slug,
        "org_id": run.org_id,
        "run_id": run.run_id,
        "period": run.period,
        "version": run.version,
        "payee_id": target.payee_id,
        "formats": list(target.formats),
        "files": [
            {
                "path": f.path,
                "sha256": f.sha256,
                "size": f.size,
                "kind": f.kind,
                "format": f.format,
                "payee_id": f.payee_id,
                "statement_id": f.statement_id,
                "currency": f.currency,
            }
            for f in mine
        ],
    }
    body = (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    return _Plan(folder, mine, body)


def _local_path(url: str, data_dir: Path) -> Path | None:
    """The folder of a local target (relative paths are inside the data dir), else None."""
    location = parse_drop_url(url)
    if location.kind != "local":
        return None
    root = Path(location.options["root"])
    return root if root.is_absolute() else DataDir(data_dir).resolve(str(root))


def default_opener(data_dir: Path) -> OpenDrop:
    """Open a target: local folders are created; credentials come from the environment
    variable the target names (as for inbound drops)."""
    from pipelines.connections import connect

    def opener(url: str, secret_env: str | None) -> Drop:
        local = _local_path(url, data_dir)
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
            return LocalDrop(local)
        return connect(url, secret_env)

    return opener


# Errors about the request (a missing folder, no permission), not the connection: no retry.
_PERMANENT: tuple[type[BaseException], ...] = (
    DropAuthError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
)


def _transient() -> tuple[type[BaseException], ...]:
    """Errors worth a retry: the connection (refused, reset, closed, timed out), not the
    request. Any other OSError counts ("Socket is closed" from a dropped SFTP session)."""
    import paramiko  # type: ignore[import-untyped]

    return (OSError, EOFError, paramiko.SSHException)


class _Connection:
    """One target's drop, reopened after a connection error, each call retried with back-off."""

    def __init__(
        self,
        opener: OpenDrop,
        target: Target,
        *,
        retries: int,
        backoff: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.opener, self.target = opener, target
        self.retries, self.backoff, self.sleep = max(1, retries), backoff, sleep
        self.drop: Drop | None = None
        self.transient = _transient()

    def close(self) -> None:
        if self.drop is not None:
            try:
                self.drop.close()
            except Exception:  # a dead connection may fail to close; it is gone anyway
                log.debug("closing %s failed", self.target.name, exc_info=True)
            self.drop = None

    def call(self, path: str, method: str, *args: Any) -> Any:
        """``drop.<method>(*args)``; ``path`` names what is at stake in an error."""
        for attempt in range(1, self.retries + 1):
            try:
                if self.drop is None:
                    self.drop = self.opener(self.target.url, self.target.secret_env)
                return getattr(self.drop, method)(*args)
            except _PERMANENT as exc:
                code = "auth_refused" if isinstance(exc, DropAuthError) else "drop_error"
                raise _Failed(self._error(code, path, exc, attempt)) from exc
            except self.transient as exc:
                self.close()
                if attempt == self.retries:
                    raise _Failed(self._error("unreachable", path, exc, attempt)) from exc
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning(
                    "statement target %s: %s failed (%s); retry %d/%d in %.1fs",
                    self.target.name,
                    path or "connect",
                    exc,
                    attempt,
                    self.retries - 1,
                    delay,
                )
                self.sleep(delay)
            except Exception as exc:  # anything else: the target fails, the others go on
                raise _Failed(self._error("drop_error", path, exc, attempt)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, code: str, path: str, exc: BaseException, attempts: int) -> dict[str, Any]:
        return {
            "code": code,
            "target": self.target.name,
            "path": path,
            "message": f"{type(exc).__name__}: {exc}",
            "attempts": attempts,
        }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload(conn: _Connection, plan: _Plan, local: Path) -> tuple[str, int]:
    """Compare with the drop and upload what is missing, the manifest last.

    Returns ("published" | "unchanged", files uploaded); raises _Refused when the drop holds
    different bytes under one of our names, _Failed when retries run out.
    """
    folder = plan.folder
    manifest_name = f"{folder}/{DROP_MANIFEST}"
    listing: dict[str, int] = {
        e.name: e.size for e in conn.call(folder, "list") if e.name.startswith(folder + "/")
    }
    differs: list[str] = []
    if manifest_name in listing:
        remote = conn.call(manifest_name, "read", manifest_name)
        if remote != plan.manifest:
            differs.append(manifest_name)
    todo: list[ExportedFile] = []
    for f in plan.files:
        name = f"{folder}/{f.path}"
        if name not in listing:
            todo.append(f)
        elif listing[name] != f.size or _sha(conn.call(name, "read", name)) != f.sha256:
            differs.append(name)
    if differs:
        raise _Refused(
            {
                "code": "remote_differs",
                "target": conn.target.name,
                "path": differs[0],
                "files": differs,
                "message": f"{len(differs)} file(s) in the drop differ from this run's and "
                f"were left as they are: {', '.join(differs[:5])}"
                + (" ..." if len(differs) > 5 else ""),
                "attempts": 1,
            }
        )
    for f in todo:
        name = f"{folder}/{f.path}"
        conn.call(name, "put", name, local / f.path)
    if manifest_name in listing and not todo:
        return "unchanged", 0
    if manifest_name not in listing:
        conn.call(manifest_name, "put", manifest_name, plan.manifest)
    return "published", len(todo)


def _begin(
    factory: sessionmaker[Session], run: RunRef, target: Target, plan: _Plan, actor: str
) -> None:
    with db.transaction(factory, actor=actor) as session:
        row = session.scalar(
            sa.select(StatementPublication).where(
                StatementPublication.run_id == run.run_id,
                StatementPublication.target_id == target.target_id,
            )
        )
        if row is None:
            row = StatementPublication(
                org_id=run.org_id,
                run_id=run.run_id,
                target_id=target.target_id,
                created_by=actor,
                attempts=0,
            )
            session.add(row)
        row.status = PublicationStatus.PUBLISHING
        row.folder = plan.folder
        row.attempts = (row.attempts or 0) + 1


def _finish(
    factory: sessionmaker[Session],
    run: RunRef,
    target: Target,
    plan: _Plan,
    actor: str,
    *,
    ok: bool,
    error: dict[str, Any] | None,
) -> None:
    with db.transaction(factory, actor=actor) as session:
        row = session.scalars(
            sa.select(StatementPublication).where(
                StatementPublication.run_id == run.run_id,
                StatementPublication.target_id == target.target_id,
            )
        ).one()
        row.error = error
        if ok:
            row.status = PublicationStatus.PUBLISHED
            row.manifest_sha256 = plan.sha256
            row.files = [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in plan.files]
            if row.published_at is None:
                row.published_at = dt.datetime.now(dt.UTC)
        else:
            row.status = PublicationStatus.FAILED


def publish_to_target(
    factory: sessionmaker[Session],
    data_dir: Path,
    run: RunRef,
    target: Target,
    local: Path,
    files: Sequence[ExportedFile],
    *,
    actor: str,
    opener: OpenDrop | None = None,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> PublicationResult:
    """Publish one run's exported files (in ``local``) to one target; never raises for a
    target that is down or differs: the result says so."""
    plan = plan_for(run, target, files)
    _begin(factory, run, target, plan, actor)
    conn = _Connection(
        opener or default_opener(data_dir), target, retries=retries, backoff=backoff, sleep=sleep
    )
    error: dict[str, Any] | None = None
    status, uploaded = "failed", 0
    try:
        status, uploaded = _upload(conn, plan, local)
    except _Refused as exc:
        status, error = "refused", exc.error
    except _Failed as exc:
        error = exc.error
    finally:
        conn.close()
    ok = status in ("published", "unchanged")
    _finish(factory, run, target, plan, actor, ok=ok, error=error)
    result = PublicationResult(
        target=target.name,
        url=public_url(target.url),
        status=status,
        folder=plan.folder,
        files=len(plan.files),
        manifest_sha256=plan.sha256,
        error=error,
        run_id=run.run_id,
        period=run.period,
        version=run.version,
    )
    if status == "published":
        audit_ledger.append(
            data_dir,
            run.org_id,
            "published",
            run_id=run.run_id,
            period=run.period,
            version=run.version,
            actor=actor,
            target=target.name,
            url=result.url,
            folder=plan.folder,
            manifest_sha256=plan.sha256,
            uploaded=uploaded,
        )
    log.info(
        "statements of run %s -> %s: %s (%s files)%s",
        run.run_id,
        target.name,
        status,
        len(plan.files),
        f": {error['message']}" if error else "",
    )
    return result


# --- entry points -------------------------------------------------------------------------------
def publish_run(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    period: str,
    actor: str,
    version: int | None = None,
    target_names: Sequence[str] | None = None,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    render: bool = True,
    workers: int = 1,
    opener: OpenDrop | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PublicationResult]:
    """Publish the period's latest approved or locked run (or ``version``) to every enabled
    target (or those named), one result per target. Raises PublishError when nothing can be
    published (run not approved, unknown target); a target that fails does not stop the
    others."""
    run = find_run(factory, org_id=org_id, period=period, version=version)
    chosen, formats = targets(
        factory, data_dir, org_id=org_id, org_slug=run.org_slug, names=target_names, actor=actor
    )
    local, files = ensure_export(factory, data_dir, run, formats, render=render, workers=workers)
    return [
        publish_to_target(
            factory,
            data_dir,
            run,
            target,
            local,
            files,
            actor=actor,
            opener=opener,
            retries=retries,
            backoff=backoff,
            sleep=sleep,
        )
        for target in chosen
    ]


def pending_runs(factory: sessionmaker[Session], org_id: int | None = None) -> list[dict[str, Any]]:
    """Approved or locked runs (each period's latest such version) that some enabled target
    of their organisation has not received yet (none published there, or the last attempt
    failed), so a target that was down is tried again by the next DAG run:
    ``{"org", "org_id", "period", "version", "run_id"}``, oldest first."""
    with factory() as session:
        query = (
            sa.select(RoyaltyRun, Organisation.slug)
            .join(Organisation, Organisation.id == RoyaltyRun.org_id)
            .where(RoyaltyRun.status.in_(list(PUBLISHABLE)))
            .order_by(RoyaltyRun.org_id, RoyaltyRun.period_end, RoyaltyRun.version)
        )
        if org_id is not None:
            query = query.where(RoyaltyRun.org_id == org_id)
        latest: dict[tuple[int, str], tuple[RoyaltyRun, str]] = {}
        for run, slug in session.execute(query).all():
            latest[(run.org_id, run.period)] = (run, slug)  # ordered by version: last wins
        ids = [run.id for run, _ in latest.values()]
        orgs = {run.org_id for run, _ in latest.values()}
        enabled: dict[int, set[int]] = {o: set() for o in orgs}
        for tid, oid in session.execute(
            sa.select(StatementTarget.id, StatementTarget.org_id).where(
                StatementTarget.org_id.in_(orgs), StatementTarget.enabled.is_(True)
            )
        ).all():
            enabled[oid].add(tid)
        published: dict[int, set[int]] = {i: set() for i in ids}
        for rid, tid in session.execute(
            sa.select(StatementPublication.run_id, StatementPublication.target_id).where(
                StatementPublication.run_id.in_(ids),
                StatementPublication.status == PublicationStatus.PUBLISHED,
            )
        ).all():
            published[rid].add(tid)

        def pending(run: RoyaltyRun) -> bool:
            targets = enabled[run.org_id]
            if not targets:  # the default local target is made at the first publish
                return not published[run.id]
            return bool(targets - published[run.id])

        return [
            {
                "org": slug,
                "org_id": run.org_id,
                "period": run.period,
                "version": run.version,
                "run_id": run.id,
            }
            for run, slug in latest.values()
            if pending(run)
        ]


# --- which runs a DAG run publishes -------------------------------------------------------------
def runs_to_publish(
    factory: sessionmaker[Session],
    org: str,
    period: str,
    extras: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Which runs a DAG run publishes: the ``org``/``period`` params when given; else the
    org/period of each triggering royalty-run Asset event's ``extra``; else every approved or
    locked run not published yet (of ``org`` when given)."""

    def org_id(slug: str) -> int:
        try:
            with factory() as session:
                return orgs.org_id(session, slug)
        except orgs.UnknownOrganisation:
            raise PublishError("org_missing", f"no organisation {slug!r}") from None

    wanted: list[dict[str, Any]] = []
    if period:
        if not org:
            raise PublishError("org_missing", "give the organisation with the period")
        wanted.append({"org": org, "period": parse_period(period).label, "version": None})
    else:
        for extra in extras:
            if extra.get("org") and extra.get("period"):
                item = {
                    "org": str(extra["org"]),
                    "period": parse_period(str(extra["period"])).label,
                    "version": extra.get("version"),
                }
                if item not in wanted and (not org or item["org"] == org):
                    wanted.append(item)
    if not wanted and not period:
        return pending_runs(factory, org_id(org) if org else None)
    out = []
    for item in wanted:
        ref = find_run(
            factory, org_id=org_id(item["org"]), period=item["period"], version=item["version"]
        )
        out.append(
            {
                "org": ref.org_slug,
                "org_id": ref.org_id,
                "period": ref.period,
                "version": ref.version,
                "run_id": ref.run_id,
            }
        )
    return out


def summary(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table of per-target results."""
    if not results:
        return "### Statement publication\n\nNothing to publish.\n"
    lines = [
        "### Statement publication",
        "",
        "| org | period | version | target | status | files | folder | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        error = r.get("error") or {}
        problem = f"{error.get('code')}: {error.get('message')}" if error else ""
        lines.append(
            f"| {r.get('org', '')} | {r['period']} | v{r['version']} | {r['target']} "
            f"| {r['status']} | {r['files']} | {r['folder']} | {problem.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
