"""``tunemantra formats ...``: report layouts. ``formats infer`` drafts a spec from a sample
report and shows what ingesting the sample with it would give (a dry run: nothing written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

formats_app = typer.Typer(no_args_is_help=True, help="Report formats (layouts).")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the ``formats`` commands to the ``tunemantra`` app."""
    app.add_typer(formats_app, name="formats")


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
