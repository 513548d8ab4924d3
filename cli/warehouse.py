"""``tunemantra warehouse build|docs|shell`` and ``tunemantra bench warehouse``: the analysts'
DuckDB."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

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


SHOW_ROWS = 1000  # as a table; --csv prints every row
TABLES = (
    "select table_schema as schema, table_name as name, table_type as type "
    "from information_schema.tables order by table_schema <> 'main', table_schema, table_name"
)
SHELL_HELP = """SQL ends with ';'. .tables lists the marts (schema main), the seeds and the staging
and intermediate views; .quit leaves. The file is open read-only."""


@warehouse_app.command("shell")
def shell_cmd(
    command: Annotated[
        list[str] | None,
        typer.Option("--command", "-c", help="run this SQL, print the result, exit (repeatable)"),
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="results as CSV, with a header")] = False,
) -> None:
    """Open the built warehouse read-only (the DuckDB file `make demo` and `warehouse build`
    write): SQL at a prompt, from -c, or piped in. Uses the duckdb the warehouse was built
    with, so no separate duckdb CLI is needed."""
    import duckdb

    from pipelines.layout import DataDir

    path = DataDir(Resources.current().settings.data_dir).warehouse_file()
    if not path.is_file():
        typer.echo(
            f"error: no warehouse at {path}: run `make demo` or `tunemantra warehouse build`",
            err=True,
        )
        raise typer.Exit(code=2)
    with duckdb.connect(str(path), read_only=True) as con:
        if command:
            done = [_run_sql(con, sql, as_csv) for sql in command]  # each, even after an error
            raise typer.Exit(code=0 if all(done) else 1)
        if not sys.stdin.isatty():
            raise typer.Exit(code=0 if _run_sql(con, sys.stdin.read(), as_csv) else 1)
        typer.echo(f"{path} (read-only)\n{SHELL_HELP}")
        _prompt(con, as_csv)


def _run_sql(con: Any, text: str, as_csv: bool) -> bool:
    """Each statement of ``text`` in turn, its result printed; False after an error."""
    import duckdb

    if text.strip() in (".tables", ".tables;"):
        text = TABLES
    try:
        for statement in con.extract_statements(text):
            rel = con.sql(statement.query)
            if rel is None:
                continue
            if as_csv:
                _print_csv(rel.columns, rel.fetchall())
            else:
                rel.show(max_rows=SHOW_ROWS)
    except duckdb.Error as exc:
        typer.echo(f"error: {exc}", err=True)
        return False
    return True


def _print_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)


def _prompt(con: Any, as_csv: bool) -> None:
    with contextlib.suppress(ImportError):  # line editing and history at the prompt
        import readline  # noqa: F401
    buffer = ""
    while True:
        try:
            line = input("warehouse> " if not buffer else "      ...> ")
        except (EOFError, KeyboardInterrupt):
            typer.echo("")
            return
        if not buffer and line.strip() in (".quit", ".exit", ".q"):
            return
        if not buffer and line.strip() == ".help":
            typer.echo(SHELL_HELP)
            continue
        if not buffer and line.strip().startswith(".tables"):
            _run_sql(con, TABLES, as_csv)
            continue
        buffer += line + "\n"
        if buffer.rstrip().endswith(";"):
            _run_sql(con, buffer, as_csv)
            buffer = ""
