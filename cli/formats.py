"""``tunemantra formats ...``: report layouts. ``formats infer`` drafts a spec from a sample
report and shows what ingesting the sample with it would give (a dry run: nothing written);
``formats add|list|show|remove`` keep an organisation's own layouts, stored (versioned) in the
store; the shipped ones in ``schemas/formats`` stay as installed."""

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


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@formats_app.command("infer")
def infer_cmd(
    file: Annotated[Path, typer.Argument(help="a sample report (CSV/TSV/text)", exists=True)],
    out: Annotated[
        Path | None,
        typer.Option(help="write the draft spec here (its name is the file's stem)"),
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="ISO 4217 code of the amounts when no column gives it")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="overwrite an existing --out file")
    ] = False,
) -> None:
    """Draft a format spec from a sample report, then dry-run the sample with it.

    Reads the sample's encoding, delimiter, header (after any preamble) and footer, recognises
    its columns by name and content, and writes the spec with a comment on each guess and its
    confidence (to --out, else to the output). Then parses and validates the sample with it,
    writing nothing, and prints the lines, totals per currency and rejected lines with their
    reasons. Review the spec, then add it as a format."""
    from connectors.formats.base import FileRejected
    from connectors.formats.infer import infer_bytes, spec_name
    from pipelines.ingest.dry_run import dry_run
    from schemas.format_spec import SpecError, load_spec
    from schemas.territories import is_valid_currency

    if currency is not None and not is_valid_currency(currency):
        raise _fail(f"--currency {currency!r} is not an ISO 4217 code")
    name = spec_name((out or file).stem)
    if out is not None and name != out.stem:
        raise _fail(f"{out.name}: a spec file is named after its format: try {name}.yaml")
    if out is not None and out.exists() and not force:
        raise _fail(f"{out} exists (a reviewed spec?): pass --force to overwrite it")
    try:
        inferred = infer_bytes(file.read_bytes(), file.name, name=name, currency=currency)
    except FileRejected as exc:
        raise _fail(f"{file.name}: {exc.message}") from None
    spec = inferred.spec
    if out is not None:
        out.write_text(inferred.yaml_text, encoding="utf-8")
        try:
            spec = load_spec(out)  # what `formats add` will read
        except SpecError as exc:  # pragma: no cover - infer_bytes validated it already
            raise _fail(str(exc)) from None
    from pipelines.settings import get_settings

    share = get_settings().ingest_max_rejected_share
    result = dry_run(spec, file, file.name, max_rejected_share=share)
    if as_json:
        doc: dict[str, Any] = {
            "spec": str(out) if out else None,
            "inference": inferred.as_dict(),
            "dry_run": result,
        }
        if out is None:
            doc["spec_yaml"] = inferred.yaml_text
        typer.echo(json.dumps(doc, default=str))
        return
    if out is None:
        typer.echo(inferred.yaml_text)
    else:
        typer.echo(f"wrote {out} (format {name}): review the comments, then add it")
    for note in inferred.notes:
        typer.echo(f"note: {note}")
    typer.echo(_describe(file.name, result))


def _describe(name: str, r: dict[str, Any]) -> str:
    if "code" in r:
        return f"dry run: {name} would be QUARANTINED: {r['code']}: {r['message']}"
    verdict = "" if r["status"] == "would_ingest" else " (it would be QUARANTINED)"
    head = (
        f"dry run{verdict}: {name} would give {r['lines']} lines: {r['accepted']} accepted, "
        f"{r['rejected']} rejected, {r['warnings']} warning(s); nothing was written"
    )
    out = [head]
    for cur, t in r["totals"].items():
        declared = f" (the file declares {t['declared']})" if "declared" in t else ""
        out.append(
            f"  {cur}: {t['accepted']} accepted, {t['rejected']} rejected, "
            f"{t['read']} read{declared}"
        )
    for cur in r["control_total_mismatch"]:
        out.append(f"  {cur}: the lines do NOT sum to the file's declared total: quarantined")
    if r["rejected_lines"]:
        out.append("  rejected lines:")
        out += [f"    line {x['line']}: {'; '.join(x['reasons'])}" for x in r["rejected_lines"]]
    out += [
        f"  warning: {w['field']}:{w['code']} on {w['lines']} line(s)" for w in r["warning_reasons"]
    ]
    out += [f"  drift: {d}" for d in r["drift"]]
    return "\n".join(out)
