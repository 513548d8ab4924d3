"""The dbt-duckdb warehouse on the demo data: marts, money invariants, bad input, the swap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app
from pipelines import resources
from pipelines.settings import get_settings
from pipelines.warehouse import (
    AIRFLOW_SLOT,
    WarehouseError,
    WarehouseLocked,
    build,
    build_path,
    dbt_build,
    publish,
)
from tests.snapshots import DATA, Snapshots, copy_demo_label, sqlite_url

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`tunemantra demo` (which ends by building the warehouse) into a fresh data dir."""
    root = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNEMANTRA_DATABASE_URL", f"sqlite:///{root}/tm.db")
    mp.setenv("TUNEMANTRA_DATA_DIR", str(root / "var"))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    try:
        yield root / "var", result.output
    finally:
        mp.undo()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


@pytest.fixture(scope="module")
def lake(snapshots: Snapshots, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample label's month of reports in the lake (the session's snapshot, copied), the
    settings pointed at it: enough for builds of a few models (``select``)."""
    root = tmp_path_factory.mktemp("lake")
    copy_demo_label(snapshots, root, seed=11, ingested=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNEMANTRA_DATABASE_URL", sqlite_url(root))
    mp.setenv("TUNEMANTRA_DATA_DIR", str(root / DATA))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        yield root / DATA
    finally:
        mp.undo()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def _factory() -> object:
    return resources.get_session_factory(get_settings())


def _copy(src: Path, dest: Path) -> Path:
    for part in ("lake", "runs", "warehouse/reference"):
        if (src / part).exists():
            shutil.copytree(src / part, dest / part)
    return dest


@pytest.mark.slow  # the whole demo
def test_demo_builds_the_warehouse_and_prints_headlines(demo: tuple[Path, str]) -> None:
    data_dir, output = demo
    manifest = json.loads(
        next((data_dir / "runs").glob("org=*/period=2026-H1/v1/manifest.json")).read_text()
    )
    gbp = manifest["totals"]["GBP"]
    assert f"Revenue: GBP {Decimal(gbp['revenue']):,.2f}" in output
    assert f"GBP {Decimal(gbp['payable']):,.2f} payable" in output
    assert f"Unmatched revenue in suspense: GBP {Decimal(gbp['suspense']):,.2f}" in output
    with duckdb.connect(str(data_dir / "warehouse" / "tunemantra.duckdb"), read_only=True) as con:
        rec = con.execute(
            "select revenue, royalty, retained, suspense from fct_run_reconciliation"
        ).fetchall()
        assert rec == [
            (
                Decimal(gbp["revenue"]),
                Decimal(gbp["payees"]),
                Decimal(gbp["retained"]),
                Decimal(gbp["suspense"]),
            )
        ]
        lines = con.execute("select count(*), sum(amount) from fct_revenue_lines").fetchone()
        assert lines is not None and lines[0] == manifest["counts"]["lines"]
        # Money stays DECIMAL end to end.
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'fct_revenue_lines'"
            ).fetchall()
        )
        assert types["amount"] == "DECIMAL(38,12)"
        for cur, t in manifest["totals"].items():
            payable = con.execute(
                "select sum(payable), sum(reserves_held) from fct_royalty_liabilities "
                "where currency = ?",
                [cur],
            ).fetchone()
            assert payable == (Decimal(t["payable"]), Decimal(t["reserves_held"]))


@pytest.mark.slow  # the whole demo (shares the module's demo build with the test above)
def test_marts_by_store_and_month_staging_apart_and_the_shell(
    demo: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's warehouse: the store (service) dimension adds up to the lines, each month's
    top tracks rank matched revenue, the building blocks live in schemas apart from the marts,
    and ``tunemantra warehouse shell`` reads it (read-only) as docs/warehouse.md says."""
    data_dir, _ = demo
    with duckdb.connect(str(data_dir / "warehouse" / "tunemantra.duckdb"), read_only=True) as con:
        schemas = dict(
            con.execute("select table_name, table_schema from information_schema.tables").fetchall()
        )
        assert {s for t, s in schemas.items() if t.startswith("stg_")} == {"staging"}
        assert {s for t, s in schemas.items() if t.startswith("int_")} == {"intermediate"}
        assert {s for t, s in schemas.items() if t.startswith(("fct_", "dim_"))} == {"main"}
        by_store = dict(
            con.execute("select service, sum(amount) from fct_revenue_lines group by 1").fetchall()
        )
        stores = con.execute(
            "select d.service, d.lines, sum(m.revenue) from dim_stores as d "
            "join fct_revenue_monthly as m using (org_id, service) group by all"
        ).fetchall()
        assert len(stores) >= 3 and {"Spotify", "Apple"} <= {s for s, _, _ in stores}
        assert {s: r for s, _, r in stores} == by_store  # every line under its store
        assert (
            sum(n for _, n, _ in stores)
            == con.execute("select count(*) from fct_revenue_lines").fetchone()[0]
        )  # type: ignore[index]
        top = con.execute(
            "select reporting_period, currency, count(*), sum(revenue), sum(share_of_period), "
            "min(rank_in_period), count(top_service) from fct_top_tracks_by_period group by all"
        ).fetchall()
        monthly = con.execute(
            "select reporting_period, currency, sum(revenue - suspense_revenue) "
            "from fct_revenue_monthly group by all"
        ).fetchall()
        matched = {(p, c): r for p, c, r in monthly}
        assert top
        for period, currency, n, revenue, shares, best, with_store in top:
            assert revenue == matched[(period, currency)]  # matched revenue, all of it
            assert abs(shares - 1) < Decimal("0.0001") and best == 1 and with_store == n
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    shell = runner.invoke(
        app,
        ["warehouse", "shell", "--csv", "-c", "select service from dim_stores order by 1 limit 1"],
    )
    assert shell.exit_code == 0, shell.output
    assert shell.output.splitlines()[0] == "service"
    tables = runner.invoke(app, ["warehouse", "shell", "-c", ".tables"])
    assert "fct_top_tracks_by_period" in tables.output and "staging" in tables.output
    piped = runner.invoke(
        app, ["warehouse", "shell"], input="select 1 as one;\nselect * from nope;\n"
    )
    assert piped.exit_code == 1 and "nope" in piped.output
    # read-only: a write is refused, and the file is as it was
    write = runner.invoke(app, ["warehouse", "shell", "-c", "create table x (i int)"])
    assert write.exit_code == 1 and "read-only" in write.output.lower()
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    missing = runner.invoke(app, ["warehouse", "shell", "-c", "select 1"])
    assert missing.exit_code == 2 and "make demo" in missing.output
    get_settings.cache_clear()


def _rewrite_one_lake_file(data_dir: Path, change: pl.Expr | str) -> Path:
    path = sorted((data_dir / "lake" / "revenue_lines").glob("**/*.parquet"))[0]
    frame = pl.read_parquet(path)
    frame = frame.drop(change) if isinstance(change, str) else frame.with_columns(change)
    frame.write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("converted_amount", "missing column converted_amount (DECIMAL(38,12))"),
        (pl.col("amount").cast(pl.Float64), "column amount is DOUBLE, expected DECIMAL(38,12)"),
    ],
)
def test_a_bad_lake_file_stops_the_build_naming_the_column(
    lake: Path, tmp_path: Path, change: pl.Expr | str, expected: str
) -> None:
    data_dir = _copy(lake, tmp_path / "var")
    bad = _rewrite_one_lake_file(data_dir, change)
    with pytest.raises(WarehouseError) as err:
        build(_factory(), data_dir, export=False, select=["stg_lake__revenue_lines"])  # type: ignore[arg-type]
    assert expected in str(err.value)
    assert str(bad) in str(err.value)
    assert not (data_dir / "warehouse" / "tunemantra.duckdb").exists()


@pytest.mark.slow  # a whole dbt build
def test_zips_parts_before_members_and_uncommitted_parts_build_one_row_per_committed_line(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    """One lake file turned into a zip of two reports (the second half's lines numbered from
    1 again, as a zip's second member's are), another written before lines named their
    member (no ``member`` column): every line is still one row with its own key, money
    unchanged, and the build's tests (the key is unique, files reconcile) pass. And an
    ingestion killed between moving its parts into the lake and committing its ledger row
    leaves parts of no committed file: the warehouse does not read them."""
    data_dir = _copy(demo[0], tmp_path / "var")
    files = sorted((data_dir / "lake" / "revenue_lines").glob("**/*.parquet"))
    zipped = max(files, key=lambda f: pl.read_parquet(f).height)
    frame = pl.read_parquet(zipped).sort("line_no")
    half = frame.height // 2
    first, second = frame.head(half), frame.tail(frame.height - half)
    pl.concat(
        [
            first.with_columns(pl.lit("a.csv").alias("member")),
            second.with_columns(
                pl.lit("b.csv").alias("member"), pl.int_range(1, second.height + 1).alias("line_no")
            ),
        ]
    ).write_parquet(zipped)
    old = next(f for f in files if f != zipped)
    pl.read_parquet(old).drop("member").write_parquet(old)
    lines = sum(pl.read_parquet(f).height for f in files)
    source = files[0].parent
    killed = source.with_name("file=99999")
    shutil.copytree(source, killed)
    for part in killed.glob("*.parquet"):
        pl.read_parquet(part).with_columns(
            pl.lit(99999).cast(pl.Int64).alias("file_id")
        ).write_parquet(part)
    result = build(_factory(), data_dir, export=False)  # type: ignore[arg-type]
    assert result.results.get("error", 0) == 0 and result.results.get("fail", 0) == 0
    with duckdb.connect(str(result.path), read_only=True) as con:
        rows = con.execute(
            "select count(*), count(distinct revenue_line_key), count(member), "
            "count(*) filter (where file_id = 99999) from fct_revenue_lines"
        ).fetchone()
        assert rows == (lines, lines, frame.height, 0)
        assert con.execute(
            "select count(*) from fct_revenue_lines where member = 'b.csv' and line_no = 1 "
            "and revenue_line_key like '%:b.csv:1'"
        ).fetchone() == (1,)


@pytest.mark.slow  # a whole dbt build
def test_a_lake_written_entirely_before_members_builds(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    """No file has the optional ``member`` column yet: it reads as NULL everywhere."""
    data_dir = _copy(demo[0], tmp_path / "var")
    files = sorted((data_dir / "lake").glob("*/**/*.parquet"))
    for f in files:
        pl.read_parquet(f).drop("member").write_parquet(f)
    result = build(_factory(), data_dir, export=False)  # type: ignore[arg-type]
    assert result.results.get("error", 0) == 0 and result.results.get("fail", 0) == 0
    with duckdb.connect(str(result.path), read_only=True) as con:
        count, members, keys = con.execute(
            "select count(*), count(member), count(distinct revenue_line_key) "
            "from fct_revenue_lines"
        ).fetchone()
        assert count > 0 and members == 0 and keys == count


@pytest.mark.slow  # a whole dbt build
def test_no_revenue_at_all_builds_every_mart_with_zero_rows(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    data_dir = _copy(demo[0], tmp_path / "var")
    shutil.rmtree(data_dir / "lake")
    shutil.rmtree(data_dir / "runs")
    (data_dir / "lake" / "revenue_lines" / ".staging").mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(data_dir / "lake/revenue_lines/.staging/p.parquet")
    # No runs and no files either (files in the ledger but not in the lake would fail the
    # file reconciliation test, rightly).
    for f in ("royalty_runs", "royalty_run_totals", "ingest_files", "ingest_file_totals"):
        ref = data_dir / "warehouse" / "reference" / f"{f}.parquet"
        pl.read_parquet(ref).clear().write_parquet(ref)
    result = build(_factory(), data_dir, export=False)  # type: ignore[arg-type]
    assert result.results.get("error", 0) == 0 and result.results.get("fail", 0) == 0
    with duckdb.connect(str(result.path), read_only=True) as con:
        for mart in (
            "fct_revenue_lines",
            "fct_revenue_monthly",
            "fct_run_reconciliation",
            "fct_royalty_liabilities",
            "fct_usage_anomalies",
        ):
            assert con.execute(f"select count(*) from {mart}").fetchone() == (0,), mart
        assert con.execute("select count(*) from dim_tracks").fetchone() != (0,)


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
n = con.execute("select count(*) from iso_territories").fetchone()[0]
print(n, flush=True)
sys.stdin.readline()
print(con.execute("select count(*) from iso_territories").fetchone()[0], flush=True)
"""


def _hold(path: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert int(proc.stdout.readline()) > 0
    return proc


def _release(proc: subprocess.Popen[str]) -> int:
    out, _ = proc.communicate("\n", timeout=30)
    return int(out.strip())


@pytest.mark.slow  # a reader process and a whole build: about 11 CPU-s
def test_swap_under_a_reader_and_refusal_under_a_writer(lake: Path, tmp_path: Path) -> None:
    data_dir = _copy(lake, tmp_path / "var")
    target = data_dir / "warehouse" / "tunemantra.duckdb"
    build(_factory(), data_dir, export=False, select=["iso_territories"])  # type: ignore[arg-type]
    before = target.stat().st_ino
    # A read-only analyst keeps reading the old build; the swap goes through.
    reader = _hold(target, "ro")
    try:
        build(_factory(), data_dir, export=False, select=["iso_territories"])  # type: ignore[arg-type]
    finally:
        assert _release(reader) == 249
    assert target.stat().st_ino != before
    # A writer holds the file: the swap waits, then fails clearly and leaves the file intact.
    writer = _hold(target, "rw")
    started = time.monotonic()
    try:
        with pytest.raises(WarehouseLocked, match="held by another process"):
            build(
                _factory(),
                data_dir,
                export=False,
                lock_timeout=1,
                select=["iso_territories"],
            )  # type: ignore[arg-type]
    finally:
        _release(writer)
    assert time.monotonic() - started >= 1
    assert not (target.parent / ".build" / "tunemantra.duckdb").exists()
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("select count(*) from iso_territories").fetchone() == (249,)


def test_the_dags_steps_publish_only_a_build_that_passed(lake: Path, tmp_path: Path) -> None:
    """The analytics_dbt DAG's dbt_build and publish: a failed build leaves nothing to swap in
    and the served warehouse as it was; a passed one is swapped in, once."""
    data_dir = _copy(lake, tmp_path / "var")
    target = data_dir / "warehouse" / "tunemantra.duckdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(target)) as con:  # the warehouse served before
        con.execute("create table served as select 1 as n")
    served = target.read_bytes()
    done = build_path(data_dir, AIRFLOW_SLOT)
    saved = sorted((data_dir / "lake" / "revenue_lines").glob("**/*.parquet"))[0].read_bytes()
    good = _rewrite_one_lake_file(data_dir, "converted_amount")
    with pytest.raises(WarehouseError, match="missing column converted_amount"):
        dbt_build(data_dir, select=["stg_lake__revenue_lines"])
    assert not done.exists()
    assert list(done.parent.glob("**/*.duckdb*")) == []
    with pytest.raises(WarehouseError, match="no finished build"):
        publish(data_dir, slot=AIRFLOW_SLOT)
    assert target.read_bytes() == served
    good.write_bytes(saved)
    results = dbt_build(data_dir, select=["iso_territories"])
    assert results.get("success") == 1 and set(results) <= {"success", "pass"}, results
    assert done.is_file()
    assert publish(data_dir, slot=AIRFLOW_SLOT) == str(target.resolve())
    assert not done.exists()
    with duckdb.connect(str(target), read_only=True) as con:
        names = con.execute("select table_name from information_schema.tables").fetchall()
        assert {t for (t,) in names} == {"iso_territories"}
