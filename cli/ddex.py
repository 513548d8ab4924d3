"""``tunemantra ddex ...``, ``tunemantra deliver`` and ``tunemantra bench delivery``."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from pipelines.resources import Resources
from schemas.store import db
from schemas.store.orgs import UnknownOrganisation, org_id

ddex_app = typer.Typer(no_args_is_help=True, help="DDEX ERN 4.3 messages and DSP delivery.")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the delivery commands to the ``tunemantra`` app."""
    app.add_typer(ddex_app, name="ddex")
    app.command("deliver")(deliver_cmd)
    bench_app.command("delivery")(bench_delivery)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _org(res: Resources, slug: str) -> int:
    try:
        with res.factory() as session:
            return org_id(session, slug)
    except UnknownOrganisation:
        typer.echo(f"error: no organisation {slug!r}", err=True)
        raise typer.Exit(code=2) from None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@ddex_app.command("sender")
def sender_cmd(
    org: Annotated[str, typer.Option(help="organisation slug")],
    dpid: Annotated[str, typer.Option(help="the organisation's DDEX Party ID")],
    name: Annotated[str, typer.Option(help="name in MessageSender")],
) -> None:
    """Set who the organisation is in DDEX messages."""
    from schemas import identifiers
    from schemas.store.deliveries import DdexSender

    try:
        dpid = identifiers.require("dpid", dpid)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    res = Resources.current()
    found = _org(res, org)
    with db.transaction(res.factory, actor="cli") as session:
        row = session.scalar(sa.select(DdexSender).where(DdexSender.org_id == found))
        if row is None:
            session.add(DdexSender(org_id=found, dpid=dpid, name=name))
        else:
            row.dpid, row.name = dpid, name
    typer.echo(f"DDEX sender of {org}: {dpid} {name}")


@ddex_app.command("build")
def build_cmd(
    org: Annotated[str, typer.Option(help="organisation slug")],
    dsp: Annotated[str, typer.Option(help="DSP profile name")],
    out: Annotated[Path, typer.Option(help="folder for <UPC>/<UPC>.xml + resources/")],
    release: Annotated[list[str] | None, typer.Option(help="UPC (repeatable)")] = None,
    all_releases: Annotated[bool, typer.Option("--all", help="every release")] = False,
    assets: Annotated[Path | None, typer.Option(help="assets folder (<UPC>/...)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build, QC and validate each release's message and resources; print the paths."""
    from pipelines.delivery.service import build_to_folder, configured_profiles
    from pipelines.delivery.state import DeliveryError

    if bool(release) == all_releases:
        raise _fail("give --release UPC (one or more) or --all")
    res = Resources.current()
    profiles = configured_profiles(res.settings)
    if dsp not in profiles:
        raise _fail(f"unknown DSP {dsp!r}; profiles: {', '.join(sorted(profiles))}")
    try:
        built = build_to_folder(
            res,
            _org(res, org),
            profiles[dsp],
            out,
            now=_now(),
            upcs=release,
            assets=assets,
        )
    except DeliveryError as exc:
        raise _fail(str(exc)) from None
    failed = False
    for b in built:
        reasons = [p.as_dict(release=b.upc, dsp=dsp) for p in b.problems]
        failed |= b.path is None
        if as_json:
            typer.echo(
                json.dumps({"release": b.upc, "path": b.path and str(b.path), "problems": reasons})
            )
        elif b.path is not None:
            typer.echo(str(b.path))
        else:
            for r in reasons:
                if r["severity"] == "error":
                    typer.echo(
                        f"FAILED {b.upc} [{dsp}] {r['field']}: {r['code']}: {r['message']}",
                        err=True,
                    )
    raise typer.Exit(code=1 if failed else 0)


@ddex_app.command("takedown")
def takedown_cmd(
    org: Annotated[str, typer.Option(help="organisation slug")],
    release: Annotated[str, typer.Option(help="UPC")],
    dsp: Annotated[str, typer.Option(help="DSP profile name")],
    on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Withdraw a release's deals at one DSP; `tunemantra deliver` then sends the update."""
    from pipelines.delivery.service import configured_profiles, takedown
    from pipelines.delivery.state import DeliveryError

    day = dt.date.fromisoformat(on) if on else _now().date()
    res = Resources.current()
    try:
        n = takedown(
            res.factory,
            _org(res, org),
            release,
            dsp,
            on=day,
            profiles=configured_profiles(res.settings),
        )
    except DeliveryError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{n} deal(s) of {release} withdrawn at {dsp} from {day}")


@ddex_app.command("acks")
def acks_cmd(org: Annotated[str, typer.Option(help="organisation slug")]) -> None:
    """Read new acknowledgements from every DSP's acknowledgements/ folder: one JSON line per
    DSP (``status`` ok, or failed with its ``error``); exit code 1 if any DSP failed."""
    from pipelines.delivery.acks import poll_every_dsp
    from pipelines.delivery.service import configured_profiles
    from pipelines.delivery.upload import default_opener

    res = Resources.current()
    outcomes = poll_every_dsp(
        res.factory,
        _org(res, org),
        configured_profiles(res.settings).values(),
        opener=default_opener(res.data),
        now=_now(),
    )
    for outcome in outcomes:
        typer.echo(json.dumps(outcome))
        if outcome["status"] == "failed":
            typer.echo(f"FAILED {outcome['dsp']}: {outcome['error']}", err=True)
    if any(o["status"] == "failed" for o in outcomes):
        raise typer.Exit(code=1)


def deliver_cmd(
    org: Annotated[str, typer.Option(help="organisation slug")],
    dsp: Annotated[list[str] | None, typer.Option(help="DSP profile (repeatable)")] = None,
    release: Annotated[str | None, typer.Option(help="one release, by UPC")] = None,
    purge: Annotated[bool, typer.Option("--purge", help="send a PurgeReleaseMessage")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliver due releases (or one) to DSPs: QC, ERN, package, batch upload."""
    from pipelines.delivery.service import deliver
    from pipelines.delivery.state import DeliveryError

    if purge and not release:
        raise _fail("--purge needs --release UPC")
    res = Resources.current()
    try:
        rows = deliver(
            res,
            _org(res, org),
            now=_now(),
            dsps=dsp,
            upc=release,
            purge=purge,
        )
    except DeliveryError as exc:
        raise _fail(str(exc)) from None
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row.as_dict()))
        else:
            why = "; ".join(f"{r['field']}: {r['code']}" for r in row.reasons)
            typer.echo(f"{row.upc}\t{row.dsp}\t{row.state}\t{row.message_path or ''}\t{why}")
    raise typer.Exit(code=1 if any(r.state in ("qc_failed", "failed") for r in rows) else 0)


def bench_delivery(
    tracks: Annotated[int, typer.Option(help="tracks to QC, build, validate and package")] = 2000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """QC + ERN build + XSD validation + packaging to a local folder; tracks per minute."""
    from bench.delivery import bench

    with tempfile.TemporaryDirectory(prefix="tm-bench-delivery-") as tmp:
        result = bench(tracks, Path(tmp))
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['packaged_tracks']:,} tracks ({result['releases']:,} releases) QC'd, built, "
        f"validated and packaged in {result['seconds']} s = "
        f"{result['tracks_per_minute']:,} tracks/minute"
    )
