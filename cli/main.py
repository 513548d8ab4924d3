"""``tunemantra``: the admin and pipeline command line.

Starting it must be quick (``tunemantra --help`` in a fraction of a second), so this module
imports only Typer: every command imports what it needs when it runs, and the command groups
of the other ``cli`` modules are imported only when one of them is run (``LAZY``)."""

from __future__ import annotations

import functools
import importlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from schemas.errors import StoreError

STORE_BUSY_EXIT = 3
ROLES = "admin, finance, analyst or payee"

# Commands registered by the other cli modules (their ``register``), with the one-line help
# ``tunemantra --help`` shows without importing them (tests/pipelines/test_cli.py holds these
# lines to the commands' own help).
LAZY_MODULES = ("cli.ddex", "cli.formats", "cli.royalty", "cli.statements", "cli.warehouse")
LAZY: dict[str, str] = {
    "audit": "The hash-chained audit ledger.",
    "bench": "Benchmarks (figures, not tests).",
    "ddex": "DDEX ERN 4.3 messages and DSP delivery.",
    "deliver": "Deliver due releases (or one) to DSPs: QC, ERN, package, batch upload.",
    "formats": "Report formats (layouts), per organisation.",
    "royalty": "Royalty runs per period.",
    "scenario": "Scenario files (YAML).",
    "statements": "Payee statements.",
    "warehouse": "The analysts' dbt-duckdb warehouse.",
}


def store_busy(exc: BaseException) -> bool:
    """A write that waited ``TUNEMANTRA_BUSY_TIMEOUT`` seconds for the store in vain."""
    if "sqlalchemy" not in sys.modules:  # nothing touched the store: it cannot be busy
        return False
    import sqlalchemy as sa

    return isinstance(exc, sa.exc.OperationalError) and "locked" in str(exc.orig).lower()


class StoreCommands(TyperGroup):
    """Every command: a store held by another command for longer than the busy timeout is a
    clear message and exit code 3, not a ``database is locked`` traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click: its Context type is private
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if store_busy(exc):
                from pipelines.settings import get_settings

                waited = get_settings().busy_timeout
                typer.echo(
                    f"error: another command holds the store (it stayed locked for {waited:g} "
                    "s, TUNEMANTRA_BUSY_TIMEOUT); nothing was written by this one. Run it again "
                    "when the other command has finished.",
                    err=True,
                )
                raise typer.Exit(code=STORE_BUSY_EXIT) from None
            orgs = sys.modules.get("schemas.store.orgs")  # not loaded: not raised
            if orgs is not None and isinstance(exc, orgs.UnknownOrganisation):
                typer.echo(
                    f"error: no organisation {exc.slug!r} "
                    f"(tunemantra org create {exc.slug} --name ...)",
                    err=True,
                )
                raise typer.Exit(code=2) from None
            raise


class LazyCommands(StoreCommands):
    """The root group: the ``LAZY`` commands are listed by name and help alone, and their
    modules imported only when one of them is resolved to run (or show its own help)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*self.commands, *LAZY})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in LAZY:  # listed in the help: a stand-in that is never run
            return TyperCommand(cmd_name, help=LAZY[cmd_name], callback=None)
        return None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in LAZY and args[0] not in self.commands:
            self.add_command(lazy_commands().commands[args[0]], args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="TuneMantra: royalties and distribution for record labels, by hand.",
    cls=LazyCommands,
    rich_markup_mode=None,  # plain help: importing rich's formatting would double the start-up
)
db_app = typer.Typer(no_args_is_help=True, help="The store's schema.")
org_app = typer.Typer(no_args_is_help=True, help="Organisations (tenants).")
key_app = typer.Typer(no_args_is_help=True, help="API keys.")
import_app = typer.Typer(no_args_is_help=True, help="Bulk imports.")
fx_app = typer.Typer(no_args_is_help=True, help="Currency rates.")
drop_app = typer.Typer(no_args_is_help=True, help="Where an organisation's reports arrive.")
bench_app = typer.Typer(no_args_is_help=True, help=LAZY["bench"])
app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")
app.add_typer(key_app, name="apikey")
app.add_typer(import_app, name="import")
app.add_typer(fx_app, name="fx")
app.add_typer(drop_app, name="drop")


@functools.cache
def lazy_commands() -> Any:
    """The ``LAZY`` commands as one click group: the modules imported and registered once
    per process (``bench`` gathers the benchmarks of every module, so it is lazy too)."""
    lazy = typer.Typer()
    for module in LAZY_MODULES:
        importlib.import_module(module).register(lazy, bench_app)
    lazy.add_typer(bench_app, name="bench")
    return typer.main.get_command(lazy)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tunemantra {version('tunemantra')}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    del version  # acted on by its eager callback (_version) before any command runs


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def fail(exc: StoreError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the store's tables (Alembic)."""
    from pipelines.resources import get_engine
    from schemas.store import db

    engine = get_engine()
    db.upgrade(engine, revision)
    where = engine.url.render_as_string(hide_password=True)
    typer.echo(f"database at revision {db.current_revision(engine)} ({where})")


@org_app.command("create")
def org_create(
    slug: str,
    name: Annotated[str, typer.Option()],
    currency: Annotated[str, typer.Option(help="reporting currency")] = "EUR",
) -> None:
    """Create an organisation (a label or distributor)."""
    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store import db
    from schemas.store.models import Organisation
    from schemas.territories import require_currency

    if not SLUG.match(slug):
        typer.echo("error: slug must be 2-63 chars of a-z, 0-9 and -", err=True)
        raise typer.Exit(code=2)
    try:
        currency = require_currency(currency)
    except ValueError as exc:
        typer.echo(f"error: currency: {exc}", err=True)
        raise typer.Exit(code=2) from None
    with db.transaction(get_session_factory(), actor="cli") as session:
        if session.scalar(sa.select(Organisation.id).where(Organisation.slug == slug)):
            typer.echo(f"error: organisation {slug!r} already exists", err=True)
            raise typer.Exit(code=2)
        org = Organisation(slug=slug, name=name, default_currency=currency)
        session.add(org)
        session.flush()
        typer.echo(f"created organisation {slug} (id {org.id})")


JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON (one object per row)")]


def _rows(rows: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    """Rows as JSON lines or as tab-separated columns under a header."""
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
        return
    if not rows:
        typer.echo(empty)
        return
    typer.echo("\t".join(rows[0]))
    for row in rows:
        typer.echo("\t".join("" if v is None else str(v) for v in row.values()))


@org_app.command("list")
def org_list(as_json: JsonOpt = False) -> None:
    """Every organisation: slug, name, accounting currency, created."""
    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store.models import Organisation

    with get_session_factory()() as session:
        orgs = session.scalars(sa.select(Organisation).order_by(Organisation.slug)).all()
        rows = [
            {
                "slug": o.slug,
                "name": o.name,
                "currency": o.default_currency,
                "created": o.created_at.isoformat(timespec="seconds"),
            }
            for o in orgs
        ]
    _rows(rows, as_json, "no organisations (tunemantra org create SLUG --name ...)")


@key_app.command("create")
def apikey_create(
    org: Annotated[str, typer.Option(help="organisation slug")],
    role: Annotated[str, typer.Option(help=ROLES)],
    payee: Annotated[int | None, typer.Option(help="payee id (payee keys only)")] = None,
    label: Annotated[str, typer.Option()] = "",
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from pipelines.resources import get_session_factory
    from pipelines.settings import get_settings
    from schemas.errors import StoreError
    from schemas.store import db
    from schemas.store.keys import issue_key
    from schemas.store.models import Role
    from schemas.store.orgs import org_id as org_id_of

    try:
        kind = Role(role)
    except ValueError:
        raise typer.BadParameter(f"{role!r}: use {ROLES}", param_hint="--role") from None
    settings = get_settings()
    try:
        with db.transaction(get_session_factory(), actor="cli") as session:
            _, plain = issue_key(
                session,
                org_id=org_id_of(session, org),
                role=kind,
                payee_id=payee,
                label=label,
                secret_key=settings.secret_key.get_secret_value(),
            )
    except StoreError as exc:
        raise fail(exc) from None
    typer.echo(plain)


@key_app.command("list")
def apikey_list(
    org: Annotated[str, typer.Option(help="organisation slug")],
    all_keys: Annotated[bool, typer.Option("--all", help="revoked keys too")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The organisation's API keys: prefix (``tm_<prefix>_...``), role, payee, label, created,
    revoked. The keys themselves are never stored, so never shown."""
    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store.models import ApiKey
    from schemas.store.orgs import org_id as org_id_of

    with get_session_factory()() as session:
        stmt = sa.select(ApiKey).where(ApiKey.org_id == org_id_of(session, org))
        if not all_keys:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        rows = [
            {
                "prefix": k.prefix,
                "role": k.role.value,
                "payee_id": k.payee_id,
                "label": k.label,
                "created": k.created_at.isoformat(timespec="seconds"),
                "revoked": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
            }
            for k in session.scalars(stmt.order_by(ApiKey.id))
        ]
    _rows(rows, as_json, "no keys" + ("" if all_keys else " (--all: revoked keys too)"))


@key_app.command("revoke")
def apikey_revoke(
    key: Annotated[str, typer.Argument(help="the key's prefix (apikey list), or the key")],
    org: Annotated[str, typer.Option(help="organisation slug")],
) -> None:
    """Revoke an API key: every request with it is refused from now on, and the payee portal
    sessions signed in with it end at once. Audited; cannot be undone (issue a new key)."""
    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store import db
    from schemas.store.keys import revoke_key
    from schemas.store.models import ApiKey
    from schemas.store.orgs import org_id as org_id_of

    parts = key.strip().split("_", 2)
    prefix = parts[1] if len(parts) == 3 and parts[0] == "tm" else key.strip()
    with db.transaction(get_session_factory(), actor="cli") as session:
        row = session.scalar(
            sa.select(ApiKey).where(
                ApiKey.org_id == org_id_of(session, org), ApiKey.prefix == prefix
            )
        )
        if row is None:
            typer.echo(f"error: organisation {org!r} has no key {prefix!r}", err=True)
            raise typer.Exit(code=2)
        if row.revoked_at is not None:
            typer.echo(f"key {prefix} was already revoked ({row.revoked_at:%Y-%m-%d %H:%M} UTC)")
            return
        revoke_key(session, row)
    typer.echo(f"revoked key {prefix} ({row.role.value}): its requests and portal sessions end")


@import_app.command("catalog")
def import_catalog_cmd(
    file: Path,
    org: Annotated[str, typer.Option()],
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Import a catalogue CSV/JSON file, all or nothing (the API's /v1/imports/catalog)."""
    from pipelines.resources import get_session_factory
    from schemas.errors import StoreError
    from schemas.store import db
    from schemas.store.imports import import_catalog
    from schemas.store.orgs import org_id as org_id_of

    kind = "application/json" if file.suffix.lower() == ".json" else "text/csv"
    try:
        with db.transaction(get_session_factory(), actor="cli") as session:
            result = import_catalog(
                session, org_id_of(session, org), file.read_bytes(), kind, dry_run=dry_run
            )
    except StoreError as exc:
        typer.echo(
            json.dumps(
                {"detail": exc.detail, "errors": [e.as_dict() for e in exc.errors]}, indent=1
            ),
            err=True,
        )
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(result.as_dict()))


@fx_app.command("import")
def fx_import(file: Path, org: Annotated[str, typer.Option()]) -> None:
    """Import rates from CSV (base,quote,period,rate,source), all or nothing."""
    from pipelines.resources import get_session_factory
    from schemas.errors import StoreError
    from schemas.store import db
    from schemas.store.fx import import_rates
    from schemas.store.orgs import org_id as org_id_of

    try:
        with db.transaction(get_session_factory(), actor="cli") as session:
            counts = import_rates(session, org_id_of(session, org), file.read_bytes())
    except StoreError as exc:
        raise fail(exc) from None
    typer.echo(json.dumps(counts))


@fx_app.command("list")
def fx_list(
    org: Annotated[str, typer.Option(help="organisation slug")],
    period: Annotated[str | None, typer.Option(help="one month, YYYY-MM")] = None,
    currency: Annotated[
        str | None, typer.Option(help="rates with this currency as base or quote")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The organisation's rates: 1 base = rate quote, per month, with their source."""
    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store.fx import PERIOD as MONTH
    from schemas.store.models import FxRate
    from schemas.store.orgs import org_id as org_id_of

    if period is not None and not MONTH.match(period):
        raise typer.BadParameter(f"{period!r} is not a month: use YYYY-MM", param_hint="--period")
    with get_session_factory()() as session:
        stmt = sa.select(FxRate).where(FxRate.org_id == org_id_of(session, org))
        if period is not None:
            stmt = stmt.where(FxRate.period == period)
        if currency is not None:
            cur = currency.upper()
            stmt = stmt.where(sa.or_(FxRate.base == cur, FxRate.quote == cur))
        order = (FxRate.period, FxRate.base, FxRate.quote)
        rows = [
            {
                "period": r.period,
                "base": r.base,
                "quote": r.quote,
                "rate": f"{r.rate.normalize():f}",
                "source": r.source,
            }
            for r in session.scalars(stmt.order_by(*order))
        ]
    _rows(rows, as_json, "no rates (tunemantra fx import rates.csv --org ORG)")


@drop_app.command("add")
def drop_add(
    name: str,
    url: Annotated[str, typer.Option(help="folder, file://, sftp://user@host/path/, s3://b/p/")],
    org: Annotated[str, typer.Option()],
    secret_env: Annotated[str | None, typer.Option(help="env var holding the password")] = None,
    format: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Configure a drop location for an organisation (the DAG polls every enabled drop)."""
    from urllib.parse import urlsplit

    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store import db
    from schemas.store.models import Drop
    from schemas.store.orgs import org_id as org_id_of

    if urlsplit(url).password is not None:
        typer.echo(
            "error: no password in the URL (it would be stored); use --secret-env NAME "
            "and put the password in that environment variable",
            err=True,
        )
        raise typer.Exit(code=2)
    with db.transaction(get_session_factory(), actor="cli") as session:
        org_id = org_id_of(session, org)
        if session.scalar(sa.select(Drop.id).where(Drop.org_id == org_id, Drop.name == name)):
            typer.echo(f"error: drop {name!r} exists", err=True)
            raise typer.Exit(code=2)
        session.add(Drop(org_id=org_id, name=name, url=url, secret_env=secret_env, format=format))
    typer.echo(f"drop {name} -> {url}")


@drop_app.command("list")
def drop_list(org: Annotated[str, typer.Option()]) -> None:
    """The organisation's drops: name, URL, enabled."""
    import sqlalchemy as sa

    from pipelines.resources import get_session_factory
    from schemas.store.models import Drop
    from schemas.store.orgs import org_id as org_id_of

    with get_session_factory()() as session:
        for d in session.scalars(sa.select(Drop).where(Drop.org_id == org_id_of(session, org))):
            typer.echo(f"{d.name}\t{d.url}\t{'enabled' if d.enabled else 'disabled'}")


@app.command("rematch")
def rematch_cmd(org: Annotated[str, typer.Option()]) -> None:
    """Re-match suspense lines against the current catalogue and match rules."""
    from pipelines.ingest.suspense import rematch
    from pipelines.resources import Resources
    from schemas.store.orgs import org_id as org_id_of

    res = Resources.current()
    with res.factory() as session:
        org_id = org_id_of(session, org)
    typer.echo(json.dumps(rematch(res, org_id)))


@bench_app.command("ingest")
def bench_ingest(
    lines: Annotated[int, typer.Option(help="lines per generated file")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ingest an N-line gzipped DSR and an N-line CSV end to end; lines/s and peak RSS."""
    from bench.ingest import run

    result = run(lines)
    if as_json:
        typer.echo(json.dumps(result))
        return
    for r in result["results"]:
        typer.echo(
            f"{r['file']}: {r['status']} {r['lines']:,} lines in {r['seconds']} s = "
            f"{r['lines_per_second']:,} lines/s, peak RSS {r['peak_rss_mib']} MiB; "
            f"floor {r['floor_seconds']} s ({r['floor_cpu_seconds']} CPU-s), ratio {r['ratio']}"
        )


@bench_app.command("load")
def bench_load(
    tracks: Annotated[int, typer.Option(min=1, help="tracks (five per release)")] = 5000,
    payees: Annotated[int, typer.Option(min=0, help="payees (default: tracks / 7)")] = 0,
    contracts: Annotated[
        int, typer.Option(min=0, help="contracts, at least one per payee (default: 0.18 x tracks)")
    ] = 0,
    database_url: Annotated[
        str | None,
        typer.Option(help="a database to load into (migrated here); default a temporary SQLite"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """`scenario load` of a generated label (artists, releases, tracks, payees, contracts,
    rates, two or three splits a track): rows/s beside a raw executemany of as many rows."""
    from bench.load import describe, run

    result = run(
        tracks,
        payees or max(1, tracks // 7),
        contracts or max(1, tracks * 9 // 50),
        database_url=database_url,
    )
    typer.echo(json.dumps(result) if as_json else describe(result))


@bench_app.command("api")
def bench_api(
    clients: Annotated[
        list[int] | None, typer.Option(min=1, help="concurrent clients (repeat for several)")
    ] = None,
    seconds: Annotated[float, typer.Option(min=0.5, help="seconds of load")] = 10.0,
    backend_url: Annotated[
        str | None,
        typer.Option(help="an EMPTY database to fill and serve (default: a temporary SQLite)"),
    ] = None,
    during_write: Annotated[
        bool, typer.Option("--during-write", help="SQLite: a writer holds the store meanwhile")
    ] = False,
    tracks: Annotated[int, typer.Option(min=2, help="generated tracks (half as many payees)")] = (
        2000
    ),
    workers: Annotated[
        int, typer.Option(min=1, help="server processes, for the API and the bare anchor alike")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The API under N concurrent clients for S seconds (requests/s, p50/p95/p99, max, errors
    by status), beside a bare FastAPI endpoint under the same load in the same run."""
    from bench.api import describe, run

    result = run(
        clients or [16],
        seconds,
        backend_url=backend_url,
        during_write=during_write,
        tracks=tracks,
        workers=workers,
    )
    typer.echo(json.dumps(result) if as_json else describe(result))


@app.command("ingest")
def ingest_cmd(
    sources: Annotated[list[str], typer.Argument(help="files, folders or drop URLs")],
    org: Annotated[str, typer.Option(help="organisation slug")],
    format: Annotated[str | None, typer.Option(help="skip detection: this format")] = None,
    period: Annotated[str | None, typer.Option(help="reporting period YYYY-MM")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per file")] = False,
    chunk_bytes: Annotated[
        int | None, typer.Option(help="text per chunk (default 64 MiB)", min=1, hidden=True)
    ] = None,
) -> None:
    """Ingest revenue report files: parse, validate, match, convert, write Parquet. What a
    crashed ingestion of the organisation left is recovered first."""
    from pipelines.ingest.drops import ingest_sources
    from pipelines.resources import Resources
    from schemas.store import db
    from schemas.store.fx import PERIOD as MONTH
    from schemas.store.orgs import org_id as org_id_of

    if period is not None and not MONTH.match(period):
        raise typer.BadParameter(f"{period!r} is not a month: use YYYY-MM", param_hint="--period")
    res = Resources.current()
    with res.factory() as session:
        org_id = org_id_of(session, org)
    failed = False
    for outcome in ingest_sources(
        res,
        org_id=org_id,
        sources=sources,
        format=format,
        period=period,
        chunk_bytes=chunk_bytes,
        settle=res.settings.drop_settle_seconds,
    ):
        failed |= outcome.status in ("quarantined", "failed")
        if as_json:
            typer.echo(json.dumps(outcome.as_dict(), default=str))
        else:
            typer.echo(_describe(outcome))
    from pipelines.ingest.suspense import rebuild_suspense

    with db.transaction(res.factory, actor="cli") as session:
        rebuild_suspense(session, res.data, org_id)
    raise typer.Exit(code=1 if failed else 0)


@app.command("recover")
def recover_cmd(
    org: Annotated[str | None, typer.Option(help="organisation slug (default: all)")] = None,
) -> None:
    """Remove what crashed ingestions left: lake parts and staging of no committed file."""
    from pipelines.ingest.files import recover
    from pipelines.resources import Resources
    from schemas.store.orgs import org_id as org_id_of

    res = Resources.current()
    org_id = None
    if org is not None:
        with res.factory() as session:
            org_id = org_id_of(session, org)
    removed = recover(res, org_id)
    for what in removed:
        typer.echo(f"removed {what}")
    typer.echo(f"recovered: {len(removed)} removed")


def _describe(o: Any) -> str:
    if o.status == "quarantined":
        head = f"QUARANTINED {o.name}: {o.quarantine['code']}: {o.quarantine['message']}"
        # too many lines rejected: the top reasons, each with a count and an example line
        examples = [
            f"\n    {r['lines']:>7} lines  {r['field']}:{r['code']}  e.g. "
            f"{r['example']['file']} line {r['example']['row']}: {r['example']['message']}"
            for r in o.quarantine.get("top_reasons", [])
        ]
        return head + "".join(examples)
    if o.status == "failed":
        return f"FAILED      {o.name}: {o.errors[0]['message']} (not recorded: run again)"
    if o.status == "duplicate":
        return f"duplicate   {o.name}: same content as ingested file {o.file_id}"
    totals = ", ".join(f"{c} {t['accepted']}" for c, t in o.totals.items())
    return (
        f"ingested    {o.name} [{o.format}] {o.lines} lines: {o.accepted} accepted "
        f"({o.matched} matched, {o.suspense} suspense), {o.rejected} rejected; {totals}"
    )


def api_from_settings() -> Any:
    """The API app on the settings' store, its connection pool as large as the requests one
    process works on at once (``tunemantra api``; each uvicorn worker process builds its own)."""
    from api.app import create_app
    from pipelines.resources import get_session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    return create_app(
        get_session_factory(settings, pool_size=settings.api_max_in_flight),
        secret_key=settings.secret_key.get_secret_value(),
    )


@app.command("api")
def serve_api(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(min=1, help="server processes (about one per core)")] = 1,
) -> None:
    """Serve the API (OpenAPI docs at /docs). Binds loopback unless told otherwise.

    One process works on TUNEMANTRA_API_MAX_IN_FLIGHT requests at once (default 32) with a
    store connection pool of that size; run several with --workers N to use N cores (each
    opens its own pool: on PostgreSQL keep N x pool below max_connections)."""
    import uvicorn

    from pipelines.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "cli.main:api_from_settings",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
    )


@app.command("demo")
def demo(seed: Annotated[int, typer.Option()] = 2026) -> None:
    """Run the sample label `demo` end to end on embedded defaults: build its catalogue,
    payees, contracts and splits, write a month of its sales reports and ingest them, run,
    approve and lock the period, deliver releases to DSPs, build the warehouse, then render
    and publish the payees' statements."""
    from demo.label import ingest_demo_reports, print_ingest, print_summary, run_demo
    from pipelines.resources import get_engine, get_session_factory
    from pipelines.settings import get_settings
    from schemas.store import db

    settings = get_settings()
    engine = get_engine(settings)
    db.upgrade(engine)
    factory = get_session_factory(settings)
    summary = run_demo(
        factory,
        seed=seed,
        data_dir=settings.data_dir,
        secret_key=settings.secret_key.get_secret_value(),
    )
    print_summary(summary)
    print_ingest(ingest_demo_reports(factory, settings.data_dir, summary.org_id, seed=seed))
    from demo.royalty import print_royalty, run_demo_period

    print_royalty(run_demo_period(factory, settings.data_dir, summary.org_id))
    from demo.delivery import deliver_demo_releases
    from pipelines.resources import Resources

    deliver_demo_releases(Resources.from_settings(settings), summary.org_id, seed=seed)
    from demo.warehouse import print_demo_warehouse

    print_demo_warehouse(factory, settings.data_dir, summary.org_id)
    from demo.statements import print_statements, publish_demo_statements

    print_statements(
        publish_demo_statements(
            factory,
            settings.data_dir,
            summary.org_id,
            secret_key=settings.secret_key.get_secret_value(),
        )
    )


def main() -> None:  # pragma: no cover
    sys.exit(app())
