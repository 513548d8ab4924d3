"""``tunemantra royalty|audit|scenario``: the period run from the command line."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from pipelines.resources import get_session_factory
from pipelines.royalty.audit_ledger import LedgerError
from pipelines.settings import get_settings
from royalty_engine.periods import PeriodError
from royalty_engine.terms import EngineError
from schemas.store.orgs import org_id as org_id_of

royalty_app = typer.Typer(no_args_is_help=True, help="Royalty runs per period.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit ledger.")
scenario_app = typer.Typer(no_args_is_help=True, help="Scenario files (YAML).")

OrgOpt = Annotated[str, typer.Option("--org", help="organisation slug")]
PeriodOpt = Annotated[str, typer.Option("--period", help="2026-01, 2026-Q1 or 2026-H1")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="who (default: OS user)")]


def _engine_error(exc: EngineError | PeriodError | LedgerError) -> typer.Exit:
    if isinstance(exc, LedgerError):
        typer.echo(
            f"error: ledger_broken: {exc}; nothing was recorded (see `audit verify`)", err=True
        )
        return typer.Exit(code=2)
    if isinstance(exc, PeriodError):
        typer.echo(f"error: bad_period: {exc}", err=True)
        return typer.Exit(code=2)
    typer.echo(f"error: {exc.code}: {exc.message}", err=True)
    for d in exc.details[:20]:
        typer.echo(f"  {json.dumps(d, default=str)}", err=True)
    return typer.Exit(code=2)


def _org(slug: str) -> tuple[Any, Path, int]:
    settings = get_settings()
    factory = get_session_factory(settings)
    with factory() as session:
        org_id = org_id_of(session, slug)
    return factory, settings.data_dir, org_id


def today() -> dt.date:
    """The date the period rules are checked against (UTC): the CLI is an entry point."""
    return dt.datetime.now(dt.UTC).date()


def _actor(actor: str | None) -> str:
    return actor or f"cli:{getpass.getuser()}"


def print_run(report: dict[str, Any]) -> None:
    typer.echo(
        f"run {report['run_id']}: {report['period']} v{report['version']} {report['status']}"
    )
    for cur, t in report["totals"].items():
        parts = ", ".join(f"{k} {v}" for k, v in t.items())
        typer.echo(f"  {cur}: {parts}")
    if "revenue" in next(iter(report["totals"].values()), {}):
        for cur, t in report["totals"].items():
            if "revenue" in t:
                typer.echo(
                    f"  reconciled {cur}: revenue {t['revenue']} = payees {t['payees']} + "
                    f"retained {t['retained']} + suspense {t['suspense']}"
                )
    for entry in report.get("diff") or []:
        typer.echo(f"  changed: payee {entry['payee_id']} {entry['currency']}: {entry['changes']}")


@royalty_app.command("run")
def royalty_run(
    org: OrgOpt,
    period: PeriodOpt,
    as_json: JsonOpt = False,
    correction: Annotated[
        str | None, typer.Option(help="recalculate a locked period as a new version: why")
    ] = None,
    actor: ActorOpt = None,
) -> None:
    """Compute a period: splits, rates, escalations, recoupment, reserves, tax, thresholds."""
    from pipelines.royalty.run import run_period

    factory, data_dir, org_id = _org(org)
    try:
        report = run_period(
            factory,
            data_dir,
            org_id=org_id,
            period=period,
            actor=_actor(actor),
            correction=correction,
        ).as_dict()
    except (EngineError, PeriodError, LedgerError) as exc:
        raise _engine_error(exc) from None
    if as_json:
        typer.echo(json.dumps(report, default=str))
    else:
        print_run(report)


RunIdOpt = Annotated[
    int | None,
    typer.Option(
        "--run",
        help="the run id you reviewed: refused if the period was run again since",
    ),
]


UnendedOpt = Annotated[
    str | None,
    typer.Option(
        "--allow-unended",
        help="approve or lock a period that has not ended yet: why (kept in the audit log "
        "and the audit ledger)",
    ),
]


CommentOpt = Annotated[
    str | None,
    typer.Option("--comment", help="why: kept with the decision in the audit log"),
]


def _transition(
    org: str,
    period: str,
    to: str,
    as_json: bool,
    actor: str | None,
    run_id: int | None,
    allow_unended: str | None = None,
    comment: str | None = None,
) -> None:
    from pipelines.royalty.transitions import transition

    factory, data_dir, org_id = _org(org)
    try:
        report = transition(
            factory,
            data_dir,
            org_id=org_id,
            period=period,
            actor=_actor(actor),
            to=to,
            run_id=run_id,
            today=today(),
            allow_unended=allow_unended,
            comment=comment,
        ).as_dict()
    except (EngineError, PeriodError, LedgerError) as exc:
        raise _engine_error(exc) from None
    if as_json:
        typer.echo(json.dumps(report, default=str))
    else:
        typer.echo(f"run {report['run_id']}: {report['period']} v{report['version']} {to}")


@royalty_app.command("approve")
def royalty_approve(
    org: OrgOpt,
    period: PeriodOpt,
    as_json: JsonOpt = False,
    actor: ActorOpt = None,
    run_id: RunIdOpt = None,
    allow_unended: UnendedOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Approve the period's latest calculated run (``--run``: the one you reviewed).
    A period that has not ended is refused (``period_not_ended``) without --allow-unended."""
    _transition(org, period, "approved", as_json, actor, run_id, allow_unended, comment)


@royalty_app.command("reject")
def royalty_reject(
    org: OrgOpt,
    period: PeriodOpt,
    as_json: JsonOpt = False,
    actor: ActorOpt = None,
    run_id: RunIdOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Reject the period's latest calculated run: it stays calculated (fix the cause and run
    it again); the rejection and --comment are kept in the audit log."""
    _transition(org, period, "rejected", as_json, actor, run_id, comment=comment)


@royalty_app.command("lock")
def royalty_lock(
    org: OrgOpt,
    period: PeriodOpt,
    as_json: JsonOpt = False,
    actor: ActorOpt = None,
    run_id: RunIdOpt = None,
    allow_unended: UnendedOpt = None,
) -> None:
    """Lock the period's approved run: it can no longer be recalculated, only corrected.
    A period that has not ended is refused (``period_not_ended``) without --allow-unended."""
    _transition(org, period, "locked", as_json, actor, run_id, allow_unended)


@royalty_app.command("reproduce")
def royalty_reproduce(run_id: Annotated[int, typer.Option("--run")]) -> None:
    """Recompute a past run from its snapshot and compare every output byte for byte."""
    from pipelines.royalty.verification import reproduce

    settings = get_settings()
    try:
        result = reproduce(get_session_factory(settings), settings.data_dir, run_id=run_id)
    except (EngineError, PeriodError) as exc:
        raise _engine_error(exc) from None
    typer.echo(json.dumps(result))
    raise typer.Exit(code=0 if result["identical"] else 1)


@royalty_app.command("detail")
def royalty_detail(
    run_id: Annotated[int, typer.Option("--run")],
    payee: Annotated[int, typer.Option("--payee", help="payee id")],
    out: Annotated[Path | None, typer.Option(help="write the detail as CSV here")] = None,
) -> None:
    """A payee's statement detail for a run: by track, source, territory, usage and month."""
    from pipelines.royalty.preview import statement_detail

    settings = get_settings()
    try:
        detail = statement_detail(
            get_session_factory(settings), settings.data_dir, run_id=run_id, payee_id=payee
        )
    except (EngineError, PeriodError) as exc:
        raise _engine_error(exc) from None
    if out is not None:
        detail.write_csv(out)
        typer.echo(f"{detail.height} rows -> {out}")
        return
    for dim in ("source", "territory", "track_id"):
        summary = detail.group_by("contract_id", "currency", dim).agg(pl.col("amount").sum())
        typer.echo(f"by {dim}:")
        for row in summary.sort("contract_id", "amount", descending=[False, True]).iter_rows():
            typer.echo("  " + "  ".join(str(v) for v in row))


NEXT_STEP = {
    "draft": "being computed; if no run is under way, `tunemantra audit repair` finishes it",
    "calculated": "review it (`royalty detail`, the preview), then "
    "`tunemantra royalty approve --org {org} --period {period} --run {id}`",
    "approved": "statements can be published; "
    "`tunemantra royalty lock --org {org} --period {period}` makes it final",
    "locked": "final; a change is a correction: "
    '`tunemantra royalty run --org {org} --period {period} --correction "why"`',
    "superseded": "replaced by a later version",
}


def _run_row(run: Any) -> dict[str, Any]:
    def at(value: dt.datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    return {
        "run_id": run.id,
        "period": run.period,
        "version": run.version,
        "status": run.status.value,
        "created": at(run.created_at),
        "created_by": run.created_by,
        "approved_by": run.approved_by,
        "locked_by": run.locked_by,
        "correction": run.reason or None,
    }


@royalty_app.command("list")
def royalty_list(
    org: OrgOpt,
    period: Annotated[str | None, typer.Option("--period", help="one period only")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run of the organisation (each version of each period), oldest first."""
    import sqlalchemy as sa

    from royalty_engine.periods import parse_period
    from schemas.store.runs import RoyaltyRun

    factory, _, org_id = _org(org)
    query = sa.select(RoyaltyRun).where(RoyaltyRun.org_id == org_id)
    if period is not None:
        try:
            query = query.where(RoyaltyRun.period == parse_period(period).label)
        except PeriodError as exc:
            raise _engine_error(exc) from None
    with factory() as session:
        rows = [
            _run_row(r)
            for r in session.scalars(query.order_by(RoyaltyRun.period_start, RoyaltyRun.version))
        ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no runs (tunemantra royalty run --org ORG --period PERIOD)")
    for r in rows:
        who = ", ".join(
            f"{k.removesuffix('_by')} by {r[k]}"
            for k in ("created_by", "approved_by", "locked_by")
            if r[k]
        )
        why = f"; correction: {r['correction']}" if r["correction"] else ""
        typer.echo(
            f"run {r['run_id']}\t{r['period']} v{r['version']}\t{r['status']}\t"
            f"{r['created']}\t{who}{why}"
        )


@royalty_app.command("status")
def royalty_status(
    org: OrgOpt,
    period: Annotated[
        str | None, typer.Option("--period", help="one period in detail (default: every one)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Where each period stands: its current run (the latest version not superseded), its
    status and what to do next; with --period, that run's totals and a correction's diff."""
    from pipelines.royalty.snapshot import current_runs
    from royalty_engine.periods import parse_period

    factory, _, org_id = _org(org)
    with factory() as session:
        runs = sorted(current_runs(session, org_id).values(), key=lambda r: r.period_start)
        if period is not None:
            try:
                label = parse_period(period).label
            except PeriodError as exc:
                raise _engine_error(exc) from None
            runs = [r for r in runs if r.period == label]
            if not runs:
                typer.echo(f"error: run_missing: no run for {label}", err=True)
                raise typer.Exit(code=2)
        rows = [
            {
                **_run_row(r),
                "next": NEXT_STEP[r.status.value].format(id=r.id, org=org, period=r.period),
                "totals": r.totals,
                "diff": r.diff,
            }
            for r in runs
        ]
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no runs (tunemantra royalty run --org ORG --period PERIOD)")
    for r in rows:
        if period is not None:
            print_run(r)
            typer.echo(f"  next: {r['next']}")
        else:
            typer.echo(f"{r['period']}\tv{r['version']}\t{r['status']}\t{r['next']}")


@royalty_app.command("warnings")
def royalty_warnings(
    org: OrgOpt,
    period: Annotated[
        str | None, typer.Option("--period", help="2026-01, 2026-Q1 or 2026-H1 (before a run)")
    ] = None,
    run_id: Annotated[int | None, typer.Option("--run", help="a recorded run instead")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What an accountant should look at before approving a period: rates of a contract that
    both match a line with neither more specific in every dimension, track splits that leave
    release payees out, shares that fall under 100% for a payee who had all of a track.
    Exit code 0 either way (warnings are not errors)."""
    from pipelines.royalty.warnings import warnings_for_period, warnings_for_run

    if (period is None) == (run_id is None):
        typer.echo("error: give --period or --run", err=True)
        raise typer.Exit(code=2)
    factory, data_dir, org_id = _org(org)
    try:
        if run_id is not None:
            found = warnings_for_run(factory, data_dir, run_id=run_id, org_id=org_id)
        else:
            assert period is not None
            found = warnings_for_period(factory, data_dir, org_id=org_id, period=period)
    except (EngineError, PeriodError) as exc:
        raise _engine_error(exc) from None
    if as_json:
        typer.echo(json.dumps([w.as_dict() for w in found], default=str))
        return
    if not found:
        typer.echo("no warnings")
    for w in found:
        typer.echo(f"{w.code}: {w.message}")


@audit_app.command("verify")
def audit_verify(
    org: Annotated[str | None, typer.Option("--org", help="one organisation (default all)")] = None,
) -> None:
    """Check the hash chain of every ledger entry, the hash of every file it lists, the
    ledger against the store (every run, approval and lock recorded, nothing contradicted)
    and the lake files each approved or locked run read. Changes nothing (``audit repair``
    finishes what a killed command left)."""
    from pipelines.royalty import audit_ledger
    from pipelines.royalty.verification import verify_store

    settings = get_settings()
    factory = get_session_factory(settings)
    orgs = [_org(org)[2]] if org else _orgs(factory, settings.data_dir)
    bad = 0
    for org_id in orgs:
        entries = audit_ledger.read(settings.data_dir, org_id)
        problems = audit_ledger.verify(settings.data_dir, org_id)
        with factory() as session:
            problems += verify_store(session, settings.data_dir, org_id)
        bad += len(problems)
        state = "OK" if not problems else f"{len(problems)} problem(s)"
        typer.echo(f"org {org_id}: {len(entries)} entries, {state}")
        for p in problems:
            typer.echo(f"  {p['code']}: {p['message']}")
    raise typer.Exit(code=1 if bad else 0)


@audit_app.command("repair")
def audit_repair(
    org: Annotated[str | None, typer.Option("--org", help="one organisation (default all)")] = None,
) -> None:
    """Finish what a killed run, approval or lock left (also done at the start of each of
    them): a committed run's folder renamed into place, folders of runs never committed
    removed, and a committed event missing from the ledger appended, marked recovered (the
    chain only grows). Then run ``audit verify``."""
    from pipelines.royalty.record import recover

    settings = get_settings()
    factory = get_session_factory(settings)
    orgs = [_org(org)[2]] if org else _orgs(factory, settings.data_dir)
    total = 0
    for org_id in orgs:
        try:
            actions = recover(factory, settings.data_dir, org_id)
        except LedgerError as exc:
            raise _engine_error(exc) from None
        total += len(actions)
        if actions:
            typer.echo(f"org {org_id}: {len(actions)} repair(s)")
        for a in actions:
            typer.echo(f"  {a['code']}: {a['message']}")
    if not total:
        typer.echo("nothing to repair")


def _orgs(factory: Any, data_dir: Path) -> list[int]:
    """Every organisation with runs or a ledger (a ledger may be gone, or runs never made)."""
    import sqlalchemy as sa

    from pipelines.royalty import audit_ledger
    from schemas.store.runs import RoyaltyRun

    with factory() as session:
        with_runs = session.scalars(sa.select(RoyaltyRun.org_id).distinct()).all()
    return sorted({*audit_ledger.orgs_with_ledgers(data_dir), *with_runs})


@scenario_app.command("load")
def scenario_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], org: OrgOpt
) -> None:
    """Load a scenario (catalogue, payees, contracts, splits, FX, revenue) into an org."""
    from pipelines.scenario import ScenarioError, load_scenario

    settings = get_settings()
    factory = get_session_factory(settings)
    try:
        result = load_scenario(factory, settings.data_dir, file, org=org)
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(result, default=str))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(royalty_app, name="royalty")
    app.add_typer(audit_app, name="audit")
    app.add_typer(scenario_app, name="scenario")

    @bench_app.command("royalty")
    def bench_royalty(
        lines: Annotated[
            int, typer.Option(help="revenue lines in the synthetic lake")
        ] = 10_000_000,
        as_json: JsonOpt = False,
        keep: Annotated[Path | None, typer.Option(help="keep the lake in this folder")] = None,
        profile: Annotated[
            bool, typer.Option(help="then profile the engine with cProfile (a second run)")
        ] = False,
    ) -> None:
        """Time the scan floor and the full engine on a seeded synthetic lake."""
        from bench.royalty import run

        result = run(lines, keep=keep, profile=profile)
        if as_json:
            typer.echo(json.dumps(result))
            return
        for k, v in result.items():
            typer.echo(f"{k}: {v}")
