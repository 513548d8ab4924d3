"""``tunemantra statements ...`` and ``tunemantra bench statements``: payee statements from the
command line (export to a folder, publish to the outbound targets, manage the targets)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.resources import Resources
from royalty_engine.periods import PeriodError
from royalty_engine.terms import EngineError

statements_app = typer.Typer(no_args_is_help=True, help="Payee statements.")
target_app = typer.Typer(no_args_is_help=True, help="Where statements are published.")

OrgOpt = Annotated[str, typer.Option("--org", help="organisation slug")]
PeriodOpt = Annotated[str, typer.Option("--period", help="2026-01, 2026-Q1 or 2026-H1")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="run version (default: the latest)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
FormatOpt = Annotated[
    list[str] | None,
    typer.Option("--format", help="pdf, xlsx, csv or json (repeatable; default: all)"),
]


def _fail(code: str, message: str, as_json: bool, details: list[Any] | None = None) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"error": {"code": code, "message": message, "details": details}}))
    else:
        typer.echo(f"error: {code}: {message}", err=True)
        for d in (details or [])[:20]:
            typer.echo(f"  {json.dumps(d, default=str)}", err=True)
    return typer.Exit(code=2)


def _error(exc: Exception, as_json: bool) -> typer.Exit:
    if isinstance(exc, PeriodError):
        return _fail("bad_period", str(exc), as_json)
    if isinstance(exc, EngineError):
        return _fail(exc.code, exc.message, as_json, exc.details)
    return _fail("bad_input", str(exc), as_json)


def _org(slug: str, as_json: bool) -> tuple[Any, Path, int]:
    from schemas.store.orgs import UnknownOrganisation, org_id

    res = Resources.current()
    try:
        with res.factory() as session:
            found = org_id(session, slug)
    except UnknownOrganisation:
        raise _fail(
            "org_missing",
            f"no organisation {slug!r} (tunemantra org create {slug} --name ...)",
            as_json,
        ) from None
    return res.factory, res.settings.data_dir, found


def _formats(given: list[str] | None, as_json: bool) -> tuple[str, ...]:
    from pipelines.statements import FORMATS

    if not given:
        return FORMATS
    unknown = sorted(set(given) - set(FORMATS))
    if unknown:
        raise _fail(
            "bad_format",
            f"unknown format(s) {', '.join(unknown)}; use {', '.join(FORMATS)}",
            as_json,
        )
    return tuple(f for f in FORMATS if f in given)


@statements_app.command("export")
def export_cmd(
    org: OrgOpt,
    period: PeriodOpt,
    out: Annotated[Path, typer.Option("--out", help="folder to write (replaced as a whole)")],
    version: VersionOpt = None,
    fmt: FormatOpt = None,
    payee: Annotated[
        list[int] | None, typer.Option("--payee", help="payee id (repeatable; default: all)")
    ] = None,
    workers: Annotated[int, typer.Option(help="render in this many processes")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Render a run's statements into a folder (any run: a calculated one is a preview)."""
    from pipelines.statements.export import export_run
    from pipelines.statements.publish import find_run

    formats = _formats(fmt, as_json)
    factory, data_dir, org_id = _org(org, as_json)
    try:
        run = find_run(factory, org_id=org_id, period=period, version=version, publishable=False)
        result = export_run(
            factory,
            data_dir,
            run_id=run.run_id,
            out_dir=out,
            formats=formats,
            payee_ids=payee or None,
            workers=workers,
        )
    except (EngineError, PeriodError, ValueError) as exc:
        raise _error(exc, as_json) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": run.run_id,
                    "period": run.period,
                    "version": run.version,
                    "status": run.status,
                    "folder": str(result.folder),
                    "unchanged": result.unchanged,
                    "files": [
                        {
                            "path": f.path,
                            "kind": f.kind,
                            "format": f.format,
                            "payee_id": f.payee_id,
                            "sha256": f.sha256,
                            "size": f.size,
                        }
                        for f in result.files
                    ],
                }
            )
        )
        return
    state = " (preview: the run is not approved)" if run.status == "calculated" else ""
    typer.echo(
        f"run {run.run_id}: {run.period} v{run.version} {run.status}{state}: "
        f"{len(result.files)} files in {result.folder}"
        + (" (unchanged)" if result.unchanged else "")
    )
    for f in result.files:
        typer.echo(f"  {f.path}\t{f.size}\t{f.sha256}")


@statements_app.command("publish")
def publish_cmd(
    org: OrgOpt,
    period: PeriodOpt,
    version: VersionOpt = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", help="target name (repeatable; default all)")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="who (default: OS user)")] = None,
    workers: Annotated[int, typer.Option(help="render in this many processes")] = 1,
    retries: Annotated[int, typer.Option(help="tries per upload", min=1)] = 4,
    backoff: Annotated[
        float, typer.Option(help="seconds before the 2nd try, doubled each time", min=0)
    ] = 2.0,
    as_json: JsonOpt = False,
) -> None:
    """Publish an approved or locked run's statements to the organisation's targets.
    Exit code 1 when a target failed or refused, 2 when nothing could be published."""
    from pipelines.statements.publish import publish_run

    factory, data_dir, org_id = _org(org, as_json)
    try:
        results = publish_run(
            factory,
            data_dir,
            org_id=org_id,
            period=period,
            version=version,
            target_names=target or None,
            actor=actor or f"cli:{getpass.getuser()}",
            workers=workers,
            retries=retries,
            backoff=backoff,
        )
    except (EngineError, PeriodError, ValueError) as exc:
        raise _error(exc, as_json) from None
    bad = [r for r in results if not r.ok]
    if as_json:
        typer.echo(json.dumps({"results": [r.as_dict() for r in results]}))
    else:
        for r in results:
            typer.echo(
                f"{r.target}: {r.status}: {r.period} v{r.version}, {r.files} files -> "
                f"{r.url.rstrip('/')}/{r.folder} (manifest {r.manifest_sha256[:12]})"
            )
            if r.error:
                typer.echo(f"  error: {r.error['code']}: {r.error['message']}", err=True)
    if bad:
        raise typer.Exit(code=1)


@target_app.command("add")
def target_add(
    org: OrgOpt,
    name: Annotated[str, typer.Option("--name", help="target name, unique per organisation")],
    url: Annotated[str, typer.Option("--url", help="folder, sftp://user@host/path, s3://b/p")],
    secret_env: Annotated[
        str | None, typer.Option(help="env var holding the password (S3: KEY:SECRET)")
    ] = None,
    payee: Annotated[
        int | None, typer.Option("--payee", help="only this payee's statements")
    ] = None,
    fmt: FormatOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="add it switched off")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a statement target (credentials never in the URL: use --secret-env)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from connectors.drops import parse_drop_url
    from schemas.store import db
    from schemas.store.models import Payee
    from schemas.store.statements import StatementTarget

    formats = _formats(fmt, as_json)
    try:
        location = parse_drop_url(url)
    except (ValueError, TypeError) as exc:
        raise _fail("bad_url", str(exc), as_json) from None
    if "password" in location.options:
        raise _fail(
            "password_in_url",
            "no password in the URL (it would be stored); use --secret-env NAME and put the "
            "password in that environment variable",
            as_json,
        )
    factory, _, org_id = _org(org, as_json)
    try:
        with db.transaction(factory, actor=f"cli:{getpass.getuser()}") as session:
            if payee is not None:
                owner = session.scalar(sa.select(Payee.org_id).where(Payee.id == payee))
                if owner != org_id:
                    raise _fail("payee_missing", f"no payee {payee} in {org}", as_json)
            exists = session.scalar(
                sa.select(StatementTarget.id).where(
                    StatementTarget.org_id == org_id, StatementTarget.name == name
                )
            )
            if exists is not None:
                raise _fail("target_exists", f"statement target {name!r} exists", as_json)
            row = StatementTarget(
                org_id=org_id,
                name=name,
                url=url,
                secret_env=secret_env,
                payee_id=payee,
                formats=list(formats),
                enabled=not disabled,
            )
            session.add(row)
            session.flush()
            shown = _target_dict(row)
    except IntegrityError:
        raise _fail("target_exists", f"statement target {name!r} exists", as_json) from None
    if as_json:
        typer.echo(json.dumps(shown))
    else:
        typer.echo(f"statement target {name} -> {url} ({', '.join(formats)})")


def _target_dict(row: Any) -> dict[str, Any]:
    from pipelines.connections import public_url

    return {
        "id": row.id,
        "name": row.name,
        "url": public_url(row.url),
        "secret_env": row.secret_env,
        "payee_id": row.payee_id,
        "formats": list(row.formats or []),
        "enabled": bool(row.enabled),
    }


@target_app.command("list")
def target_list(org: OrgOpt, as_json: JsonOpt = False) -> None:
    """The organisation's statement targets."""
    import sqlalchemy as sa

    from schemas.store.statements import StatementTarget

    factory, _, org_id = _org(org, as_json)
    with factory() as session:
        rows = [
            _target_dict(r)
            for r in session.scalars(
                sa.select(StatementTarget)
                .where(StatementTarget.org_id == org_id)
                .order_by(StatementTarget.name)
            )
        ]
    if as_json:
        typer.echo(json.dumps({"targets": rows}))
        return
    for r in rows:
        who = "all payees" if r["payee_id"] is None else f"payee {r['payee_id']}"
        state = "enabled" if r["enabled"] else "disabled"
        typer.echo(
            f"{r['name']}\t{r['url']}\t{who}\t{','.join(r['formats'])}\t{state}"
            + (f"\tsecret from ${r['secret_env']}" if r["secret_env"] else "")
        )


def bench_statements(
    payees: Annotated[int, typer.Option(help="payees in the synthetic run")] = 1000,
    workers: Annotated[int, typer.Option(help="render in this many processes")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Time rendering and exporting every payee's statements."""
    from bench.statements import run_bench

    result = run_bench(payees, workers=workers)
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    for k, v in result.items():
        typer.echo(f"{k}: {v}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the statement commands to the ``tunemantra`` app."""
    statements_app.add_typer(target_app, name="target")
    app.add_typer(statements_app, name="statements")
    bench_app.command("statements")(bench_statements)
