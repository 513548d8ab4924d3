"""``tunemantra bench load``: a generated label through ``scenario load`` and the catalogue
import, rows/s beside a raw executemany floor (issue 22)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app


def test_bench_load_reports_rows_per_second_beside_the_floor() -> None:
    result = CliRunner().invoke(app, ["bench", "load", "--tracks", "20", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["database"] == "sqlite"
    assert got["created"] == {
        "artists": 2,
        "charges": 0,
        "contracts": 3,
        "payees": 2,
        "rates": 4,
        "releases": 4,
        "splits": 50,
        "tracks": 20,
    }
    assert got["rows"] == sum(got["created"].values())
    assert got["rows_per_second"] > 0 and got["floor_rows_per_second"] > 0
    assert got["catalog_import"]["created"] == {"artists": 2, "releases": 4, "tracks": 20}
