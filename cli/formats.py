"""``tunemantra formats add|list|show|remove``: an organisation's own report layouts, stored
(versioned) in the store; the shipped ones in ``schemas/formats`` stay as installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

formats_app = typer.Typer(no_args_is_help=True, help="Report formats (layouts), per organisation.")

OrgOpt = Annotated[str, typer.Option("--org", help="organisation slug")]
MaybeOrg = Annotated[
    str | None, typer.Option("--org", help="organisation slug (its own formats too)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(formats_app, name="formats")


@formats_app.command("add")
def add_cmd(spec: Path, org: OrgOpt, as_json: JsonOpt = False) -> None:
    """Validate SPEC.yaml and store it as the organisation's format (a changed spec is a new
    version; the same spec again changes nothing)."""
    from pipelines.resources import get_session_factory
    from schemas.format_spec import SpecError
    from schemas.store import db, org_formats
    from schemas.store.orgs import org_id

    try:
        text = spec.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: {spec}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    try:
        with db.transaction(get_session_factory(), actor="cli") as session:
            stored, new = org_formats.add(session, org_id(session, org), text, str(spec))
    except SpecError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps({"name": stored.name, "version": stored.version, "new": new}))
    elif new:
        typer.echo(f"format {stored.name} version {stored.version} added for {org}")
    else:
        typer.echo(f"format {stored.name} version {stored.version} unchanged for {org}")


def _builtin() -> dict[str, Any]:
    from connectors.formats.registry import default_registry

    return dict(default_registry())


@formats_app.command("list")
def list_cmd(org: MaybeOrg = None, as_json: JsonOpt = False) -> None:
    """The formats detection considers: the organisation's own (with --org) first, then the
    shipped ones."""
    from pipelines.resources import get_session_factory
    from schemas.store import org_formats
    from schemas.store.orgs import org_id

    rows: list[dict[str, Any]] = []
    own: set[str] = set()
    if org is not None:
        with get_session_factory()() as session:
            for f in org_formats.current(session, org_id(session, org)):
                own.add(f.name)
                rows.append({"name": f.name, "source": org, "version": f.version})
    for name in sorted(_builtin()):
        source = "shipped (overridden)" if name in own else "shipped"
        rows.append({"name": name, "source": source, "version": None})
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo("name\tsource\tversion")
    for row in rows:
        typer.echo(f"{row['name']}\t{row['source']}\t{row['version'] or ''}")


@formats_app.command("show")
def show_cmd(name: str, org: MaybeOrg = None, as_json: JsonOpt = False) -> None:
    """The spec of a format: the organisation's own (with --org) or else the shipped one."""
    from connectors.formats.spec import SpecParser
    from pipelines.resources import get_session_factory
    from schemas.errors import NotFound
    from schemas.store import org_formats
    from schemas.store.orgs import org_id

    if org is not None:
        with get_session_factory()() as session:
            try:
                stored = org_formats.get(session, org_id(session, org), name)
            except NotFound:
                stored = None
        if stored is not None:
            if as_json:
                typer.echo(json.dumps(stored.as_dict()))
            else:
                typer.echo(f"# {name} version {stored.version} ({org})")
                typer.echo(stored.spec_yaml.rstrip("\n"))
            return
    parser = _builtin().get(name)
    if parser is None:
        typer.echo(f"error: no format {name!r}", err=True)
        raise typer.Exit(code=2)
    source = parser.source if isinstance(parser, SpecParser) else None
    text = source.read_text(encoding="utf-8") if source is not None else "(a code parser)"
    if as_json:
        typer.echo(json.dumps({"name": name, "version": None, "spec": text}))
    else:
        typer.echo(f"# {name} (shipped)")
        typer.echo(text.rstrip("\n"))


@formats_app.command("remove")
def remove_cmd(name: str, org: OrgOpt) -> None:
    """Retire the organisation's format (its versions are kept: ingested files name them)."""
    from pipelines.resources import get_session_factory
    from schemas.errors import NotFound
    from schemas.store import db, org_formats
    from schemas.store.orgs import org_id

    try:
        with db.transaction(get_session_factory(), actor="cli") as session:
            kept = org_formats.remove(session, org_id(session, org), name)
    except NotFound:
        typer.echo(f"error: {org} has no format {name!r}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"format {name} removed for {org} ({kept} version(s) kept for history)")
