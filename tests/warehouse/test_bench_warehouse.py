"""``tunemantra bench warehouse`` at a small N: the synthetic data dir builds and passes every
dbt test (the money invariants included), and the result has the figures
docs/performance.md reports."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from typer.testing import CliRunner

from bench.warehouse import run
from cli.main import app
from pipelines.warehouse import FILE_TOTALS, REFERENCE, RUN_TOTALS, SUSPENSE_AMOUNTS

LINES = 20_000


def test_bench_warehouse_small(tmp_path: Path) -> None:
    result = run(LINES, keep=tmp_path)

    assert result["passed"] is True
    build = result["build"]
    assert build["passed"] is True and build["error"] is None
    assert build["tests_failed"] == 0
    assert build["tests_passed"] > 0
    assert build["nodes"]["model"] == {"success": build["nodes"]["model"]["success"]}
    assert set(build["nodes"]["test"]) == {"pass"}
    assert result["seconds"] == build["seconds"] > 0
    assert result["lines_per_second"] == round(LINES / result["seconds"])
    assert build["peak_rss_mib"] > 0
    assert result["lake"]["lines"] == LINES
    assert result["warehouse"]["fct_revenue_lines"] == LINES

    # The run reconciles to the cent: royalty + retained + suspense = revenue.
    (recon,) = result["warehouse"]["run_reconciliation"]
    assert recon["currency"] == "EUR"
    parts = Decimal(recon["royalty"]) + Decimal(recon["retained"]) + Decimal(recon["suspense"])
    assert parts == Decimal(recon["revenue"]) == Decimal(result["run"]["totals"]["revenue"])

    # Laid out as the warehouse reads a real data dir; reference tables in the exporter's types.
    data_dir = Path(result["data_dir"])
    run_dir = data_dir / result["run"]["dir"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["totals"]["EUR"]["revenue"] == recon["revenue"]
    for name in ("ledger", "statements", "breakdown", "suspense", "slots"):
        assert (run_dir / "outputs" / f"{name}.parquet").exists()
    reference = data_dir / "warehouse" / "reference"
    schemas = {name: [(c, t) for c, _, t in cols] for name, (_, cols) in REFERENCE.items()}
    schemas |= {
        "ingest_file_totals": list(zip(FILE_TOTALS.names, FILE_TOTALS.types, strict=True)),
        "royalty_run_totals": list(zip(RUN_TOTALS.names, RUN_TOTALS.types, strict=True)),
        "suspense_item_amounts": list(
            zip(SUSPENSE_AMOUNTS.names, SUSPENSE_AMOUNTS.types, strict=True)
        ),
    }
    for name, columns in schemas.items():
        schema = pq.read_schema(reference / f"{name}.parquet")
        assert [(f.name, f.type) for f in schema] == columns, name
        assert (
            result["reference_rows"][name]
            == pq.read_metadata(reference / f"{name}.parquet").num_rows
        )

    # An analyst's read-only connection opens the swapped-in file.
    with duckdb.connect(str(data_dir / "warehouse" / "tunemantra.duckdb"), read_only=True) as con:
        row = con.execute("select count(*) from fct_file_reconciliation").fetchone()
    assert row == (result["lake"]["files"],)


def test_bench_warehouse_cli_json(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app, ["bench", "warehouse", "--lines", "2000", "--json", "--keep", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["passed"] is True
    assert result["lines"] == 2000
    assert {"seconds", "lines_per_second", "build", "reference_rows"} <= set(result)
