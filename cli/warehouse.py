"""``tunemantra warehouse build`` and ``tunemantra bench warehouse``: the analysts' DuckDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipelines.resources import Resources

warehouse_app = typer.Typer(no_args_is_help=True, help="The analysts' dbt-duckdb warehouse.")


@warehouse_app.command("build")
def build_cmd(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    lock_timeout: Annotated[float, typer.Option(help="seconds to wait for a writer")] = 10.0,
) -> None:
    """Export the store's reference tables, dbt build a new DuckDB file, swap it in."""
    from pipelines.warehouse import WarehouseError, build

    res = Resources.current()
    try:
        result = build(
            res.factory,
            res.settings.data_dir,
            threads=res.settings.dbt_threads,
            lock_timeout=lock_timeout,
        )
    except WarehouseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        typer.echo(f"warehouse {result.path} built in {result.seconds} s: {result.results}")


def bench_warehouse(
    lines: Annotated[int, typer.Option(help="revenue lines in the synthetic lake")] = 10_000_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    keep: Annotated[Path | None, typer.Option(help="keep the data dir in this folder")] = None,
    seed: Annotated[int, typer.Option(help="seed of the synthetic data")] = 1,
    threads: Annotated[int, typer.Option(help="dbt threads")] = 2,
) -> None:
    """Time `dbt build` (+ swap) of the warehouse over a synthetic lake of N revenue lines."""
    from bench.warehouse import run

    result = run(lines, seed=seed, keep=keep, threads=threads)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for k, v in result.items():
            typer.echo(f"{k}: {v}")
    if not result["passed"]:
        raise typer.Exit(code=1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(warehouse_app, name="warehouse")
    bench_app.command("warehouse")(bench_warehouse)


@warehouse_app.command("docs")
def docs_cmd() -> None:
    """Build the warehouse and its dbt docs (one static HTML file under warehouse/docs/)."""
    from pipelines.warehouse import WarehouseError, build_docs

    res = Resources.current()
    try:
        path = build_docs(res.factory, res.settings.data_dir)
    except WarehouseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"dbt docs: {path}")
