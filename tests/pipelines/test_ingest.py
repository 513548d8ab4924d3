"""Ingestion end to end on local files, on SQLite and PostgreSQL: ledger, lake, quarantine,
duplicates, reconciliation, matching, FX, suspense and rematch."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal
from sqlalchemy.orm import Session, sessionmaker

from demo.label import build
from demo.reports import catalogue, write_apple, write_distributor, write_spotify
from pipelines.ingest.files import IngestOutcome, ingest_path
from pipelines.ingest.suspense import rebuild_suspense, rematch
from pipelines.layout import DataDir
from pipelines.resources import Resources
from schemas.errors import Conflict
from schemas.store import db, service, suspense
from schemas.store.fx import import_rates
from schemas.store.models import IngestFile, MatchRule, Organisation, SuspenseItem, Track
from tests.conftest import BOTH_BACKENDS, make_org
from tests.snapshots import copy_store


def _add_label(factory: sessionmaker[Session]) -> int:
    org_id = make_org(factory, "label")
    with db.transaction(factory, actor="test") as s:
        s.get(Organisation, org_id).default_currency = "GBP"  # type: ignore[union-attr]
        build(s, org_id, random.Random(7))
    return org_id


@pytest.fixture
def db_url(db_url: str, backend: str, request: pytest.FixtureRequest) -> str:
    """With ``label`` on SQLite, the store holds the label already: built once, copied."""
    if backend == "sqlite" and "label" in request.fixturenames:
        copy_store(request.getfixturevalue("snapshots"), "ingest-label", _add_label, db_url)
    return db_url


@pytest.fixture
def label(factory: sessionmaker[Session]) -> int:
    """An organisation with the demo catalogue (47 tracks), reporting in GBP."""
    with factory() as s:
        org_id = s.scalar(sa.select(Organisation.id).where(Organisation.slug == "label"))
    return org_id if org_id is not None else _add_label(factory)


def products(factory: sessionmaker[Session], org_id: int) -> list:  # type: ignore[type-arg]
    with factory() as s:
        return catalogue(s, org_id)


def lake_lines(data_dir: Path, table: str = "revenue_lines") -> pl.DataFrame:
    files = sorted((data_dir / "lake" / table).glob("**/*.parquet"))
    return pl.read_parquet(files) if files else pl.DataFrame()


def test_rates_published_from_the_accounting_currency_convert_by_their_inverse(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """A central bank publishes 1 GBP = 1.25 USD (base GBP); a USD report for a GBP label
    converts at 1 / 1.25 = 0.8, and says so in its source. An inverse is rounded as the
    royalty run rounds one (12 places); a rate stored the other way round wins."""
    from royalty_engine.earnings import FxTable

    data = tmp_path / "data"
    rates = (
        b"base,quote,period,rate,source\n"
        b"GBP,USD,2026-01,1.25,BoE\n"
        b"GBP,USD,2026-02,1.3,BoE\nUSD,GBP,2026-02,0.77,own\n"
        b"GBP,USD,2026-03,1.3,BoE\n"
    )
    with db.transaction(factory, actor="test") as s:
        import_rates(s, label, rates)
    p = products(factory, label)[0]
    jan = spotify_report(tmp_path / "spotify_x_202601_USD.csv", p.isrc, p.upc)
    jan.write_text(jan.read_text().replace(",EUR\n", ",USD\n"))
    for month, streams in (("02", "11"), ("03", "12")):
        other = tmp_path / f"spotify_x_2026{month}_USD.csv"
        other.write_text(jan.read_text().replace(",10,1.50,", f",{streams},1.50,"))
    for month in ("01", "02", "03"):
        report = tmp_path / f"spotify_x_2026{month}_USD.csv"
        out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
        assert out.accepted == 2, out
    lines = lake_lines(data).sort("reporting_period", "line_no")
    table = FxTable(
        pl.DataFrame(
            {"base": ["GBP"], "quote": ["USD"], "period": ["2026-03"], "rate": [Decimal("1.3")]},
            schema_overrides={"rate": pl.Decimal(38, 12)},
        )
    )
    march = table.rate("USD", "GBP", "2026-03")
    assert march == Decimal("0.769230769231")
    assert lines["fx_rate"].to_list() == [Decimal("0.8")] * 2 + [Decimal("0.77")] * 2 + [march] * 2
    assert lines["fx_source"].to_list() == (
        ["BoE (inverse of GBP->USD)"] * 2 + ["own"] * 2 + ["BoE (inverse of GBP->USD)"] * 2
    )
    assert lines["converted_amount"].head(2).to_list() == [Decimal("1.2"), Decimal("2.0")]
    assert rematch(Resources.of(factory, data), label)["lines_reconverted"] == 0  # stable
    # an inverse too small for 12 places is no rate: the lines stay unconverted, not 0
    with db.transaction(factory, actor="test") as s:
        import_rates(s, label, b"base,quote,period,rate,source\nGBP,VES,2026-04,3e12,bank\n")
    ves = tmp_path / "spotify_x_202604_VES.csv"
    ves.write_text(jan.read_text().replace(",USD\n", ",VES\n"))
    assert (
        ingest_path(Resources.of(factory, data), org_id=label, path=ves, name=ves.name).accepted
        == 2
    )
    april = lake_lines(data).filter(pl.col("reporting_period") == "2026-04")
    assert april["converted_amount"].null_count() == 2 and april["fx_rate"].null_count() == 2
    huge = FxTable(
        pl.DataFrame(
            {"base": ["GBP"], "quote": ["VES"], "period": ["2026-04"], "rate": [Decimal("3e12")]},
            schema_overrides={"rate": pl.Decimal(38, 12)},
        )
    )
    assert huge.rate("VES", "GBP", "2026-04") == 0  # and the run reports it as missing:
    assert huge.missing == {("VES", "GBP", "2026-04")}


@pytest.mark.parametrize("backend", BOTH_BACKENDS)  # end to end on PostgreSQL too
def test_a_report_is_ingested_matched_converted_and_recorded(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with db.transaction(factory, actor="test") as s:
        import_rates(s, label, b"base,quote,period,rate,source\nEUR,GBP,2026-01,0.85,ECB avg\n")
    report = tmp_path / "spotify_northbound_202601_EUR.csv"
    write_spotify(
        report,
        products(factory, label)[:5],
        random.Random(1),
        "EUR",
        ["DE", "FR"],
        unknown_isrc=True,
    )
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert (out.status, out.format, out.lines, out.rejected) == ("ingested", "spotify", 22, 0)
    assert (out.matched, out.suspense) == (21, 1)
    lines = lake_lines(data)
    assert lines.height == 22
    assert set(lines["reporting_period"]) == {"2026-01"}
    assert lines["amount"].dtype == pl.Decimal(38, 12)
    # FX: every line converted at the imported rate, with the rate and its source beside it.
    assert set(lines["fx_source"]) == {"ECB avg"}
    assert (lines["converted_amount"] == lines["amount"] * Decimal("0.85")).all()
    # Reconciliation: accepted lines sum to what the file holds, to the last decimal place.
    expected = sum(Decimal(r.split(",")[8]) for r in report.read_text().splitlines()[1:])
    assert Decimal(out.totals["EUR"]["accepted"]) == expected
    assert lines["amount"].sum() == expected
    with factory() as s:
        row = s.scalar(sa.select(IngestFile))
        assert row is not None
        assert (row.status.value, row.lines_matched, row.lines_suspense) == ("ingested", 21, 1)
        assert Path(row.raw_path).read_bytes() == report.read_bytes()
    assert Path(out.outputs["data_docs"]).exists()
    assert out.outputs["expectations"]["success"] is True


def test_same_content_twice_is_recorded_once(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    report = tmp_path / "statement_a.csv"
    write_distributor(report, products(factory, label)[:6], random.Random(2))
    first = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    copy = tmp_path / "statement_copy.csv"
    copy.write_bytes(report.read_bytes())
    again = ingest_path(
        Resources.of(factory, data),
        org_id=label,
        path=copy,
        name=copy.name,
        source_url="sftp://dsp/out/statement_copy.csv",
    )
    assert (first.status, again.status, again.file_id) == ("ingested", "duplicate", first.file_id)
    assert lake_lines(data).height == first.accepted
    with factory() as s:
        rows = s.scalars(sa.select(IngestFile)).all()
        assert len(rows) == 1
        assert rows[0].other_names == ["sftp://dsp/out/statement_copy.csv"]


def test_bad_lines_are_set_aside_with_reasons(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    report = tmp_path / "statement_b.csv"
    write_distributor(report, products(factory, label)[:16], random.Random(3))
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert (out.lines, out.accepted, out.rejected) == (16, 14, 2)
    codes = {(e["line_no"], e["field"], e["code"]) for e in out.errors if e["severity"] == "error"}
    assert codes == {(11, "amount", "invalid_decimal"), (13, "currency", "unknown_currency")}
    rejected = lake_lines(data, "rejected_lines")
    assert rejected["line_no"].to_list() == [13]  # the unreadable amount never became a line
    assert rejected["reasons"].to_list() == ["currency:unknown_currency"]


# A distributor's statement as it arrives (shaped on a real one; names and figures invented):
# ISO alpha-3 territories with "N/A" and legacy "ROM", usage months written "June 2025".
NORTHBOUND = """\
name: northbound
description: A distributor statement with alpha-3 territories and months written out.
fingerprint: [Sales Month, Country, ISRC, Earnings]
columns:
  - {name: Sales Month, required: true}
  - {name: Store, field: service}
  - {name: Country, field: territory}
  - {name: ISRC, required: true}
  - {name: UPC}
  - {name: Track, field: title}
  - {name: Quantity, field: quantity}
  - {name: Earnings, field: amount}
identifiers: {isrc: ISRC, upc: UPC}
currency: {value: USD}
date_rules:
  usage_period: {column: Sales Month, format: [month], span: month}
"""


def test_a_distributor_statement_with_alpha3_territories_and_written_months_goes_in(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Territories as the report writes them (USA, GBR, ROM, a name, Worldwide; N/A and blank
    are the unknown territory ZZ, with a warning each, never a refused line) and months as it
    writes them ("June 2025", "JUN-25"): every line goes in, the totals are the file's."""
    import yaml

    from connectors.formats.registry import default_registry
    from connectors.formats.spec import SpecParser
    from schemas.format_spec import FormatSpec

    spec = FormatSpec.model_validate(yaml.safe_load(NORTHBOUND))
    monkeypatch.setitem(default_registry(), spec.name, SpecParser(spec))
    p = products(factory, label)
    rows = [
        ("June 2025", "USA", "12.345678"),
        ("June 2025", "GBR", "3.10"),
        ("June 2025", "N/A", "0.75"),
        ("JUN-25", "ROM", "1.05"),
        ("june 2025", "United Kingdom", "2.00"),
        ("Jun 2025", "", "0.01"),
        ("June 2025", "Worldwide", "4.50"),
        ("June 2025", "DEU", "-0.40"),  # a chargeback
    ]
    report = tmp_path / "northbound_statement.csv"
    report.write_text(
        "Sales Month,Store,Country,ISRC,UPC,Track,Quantity,Earnings\n"
        + "".join(
            f"{m},Deezer,{c},{p[i].isrc},{p[i].upc},T,{i + 1},{a}\n"
            for i, (m, c, a) in enumerate(rows)
        )
    )
    out = ingest_path(
        Resources.of(factory, tmp_path / "data"),
        org_id=label,
        path=report,
        name=report.name,
        format="northbound",
    )
    assert (out.status, out.lines, out.accepted, out.rejected) == ("ingested", 8, 8, 0)
    assert out.reporting_periods == ["2025-06"]
    assert out.totals["USD"]["accepted"] == out.totals["USD"]["read"] == "23.355678"
    lines = lake_lines(tmp_path / "data").sort("line_no")
    assert lines["territory"].to_list() == ["US", "GB", "ZZ", "RO", "GB", "ZZ", "WW", "DE"]
    assert set(lines["usage_start"]) == {dt.date(2025, 6, 1)}
    assert set(lines["usage_end"]) == {dt.date(2025, 6, 30)}
    assert sum(lines["amount"]) == Decimal("23.355678")
    warned = {(e["line_no"], e["code"]) for e in out.errors if e["field"] == "territory"}
    assert warned == {(4, "territory_not_given"), (7, "territory_not_given")}
    assert {e["severity"] for e in out.errors} == {"warning"}
    assert out.outputs["expectations"]["success"] is True


def test_a_line_with_two_unreadable_cells_is_one_rejected_line(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    p = products(factory, label)[0]
    report = tmp_path / "spotify_x_202601_EUR.csv"
    report.write_text(
        "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency\n"
        f"GB,premium,u1,{p.isrc},{p.upc},T,A,10,1.50,EUR\n"
        f"GB,premium,u2,{p.isrc},{p.upc},T,A,ten,1.5x,EUR\n"  # two bad cells, one line
        f"GB,premium,u3,{p.isrc},{p.upc},T,A,12,2.50,EUR\n"
    )
    out = ingest_path(
        Resources.of(factory, tmp_path / "data"), org_id=label, path=report, name=report.name
    )
    assert (out.lines, out.accepted, out.rejected) == (3, 2, 1)
    assert {(e["line_no"], e["field"]) for e in out.errors} == {(3, "quantity"), (3, "amount")}
    with factory() as s:
        row = s.scalars(sa.select(IngestFile)).one()
        assert (row.lines_read, row.lines_accepted, row.lines_rejected) == (3, 2, 1)


def spotify_report(path: Path, isrc: str, upc: str) -> Path:
    path.write_text(
        "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency\n"
        f"GB,premium,u1,{isrc},{upc},T,A,10,1.50,EUR\n"
        f"GB,premium,u3,{isrc},{upc},T,A,12,2.50,EUR\n"
    )
    return path


def test_a_quarantined_file_is_read_again_only_when_told_how(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # an Apple report forced through the wrong layout: quarantined
    apple = Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "apple" / "basic"
    report = tmp_path / "80012345_0126_EU.txt"
    report.write_bytes((apple / "input.txt").read_bytes())
    first = ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name, format="spotify"
    )
    assert first.status == "quarantined" and first.quarantine is not None
    code = first.quarantine["code"]
    # the same bytes again: still quarantined, with its reason (not "duplicate", not read)
    again = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert again.status == "quarantined" and again.file_id == first.file_id
    assert again.quarantine is not None and again.quarantine["code"] == code
    assert lake_lines(data).is_empty()
    # an operator names the layout: it is read, once, and replaces the quarantine row
    told = ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name, format="apple"
    )
    assert told.status == "ingested" and told.accepted > 0
    assert lake_lines(data).height == told.accepted
    with factory() as s:
        rows = s.scalars(sa.select(IngestFile)).all()
        assert [(r.status, r.lines_accepted) for r in rows] == [("ingested", told.accepted)]
    assert ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name
    ).status == ("duplicate")
    assert lake_lines(data).height == told.accepted


def test_a_file_our_code_fails_on_is_quarantined_and_retried_after_the_fix(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest import files as ingest

    p = products(factory, label)[0]
    data = tmp_path / "data"
    report = spotify_report(tmp_path / "spotify_x_202601_EUR.csv", p.isrc, p.upc)
    real = ingest._Run.chunk

    def broken(self: ingest._Run, piece: object) -> None:
        raise ValueError("year -2025 is out of range")

    monkeypatch.setattr(ingest._Run, "chunk", broken)
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert out.status == "quarantined" and out.quarantine is not None
    assert out.quarantine["code"] == "internal_error"
    assert "ValueError: year -2025 is out of range" in out.quarantine["message"]
    assert lake_lines(data).is_empty() and nothing_staged(data)
    monkeypatch.setattr(ingest._Run, "chunk", real)  # the fix
    fixed = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert (fixed.status, fixed.accepted) == ("ingested", 2)
    assert lake_lines(data).height == 2


def test_the_same_report_in_other_wrapping_adds_nothing(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    import gzip
    import zipfile

    p = products(factory, label)[0]
    data = tmp_path / "data"
    plain = spotify_report(tmp_path / "spotify_x_202601_EUR.csv", p.isrc, p.upc)
    text = plain.read_bytes()
    gz = tmp_path / "spotify_x_202601_EUR.csv.gz"
    gz.write_bytes(gzip.compress(text, mtime=1))
    zipped = tmp_path / "spotify_x_202601_EUR.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("spotify_x_202601_EUR.csv", text)
    utf16 = tmp_path / "spotify_again_202601_EUR.csv"
    utf16.write_bytes(text.decode().encode("utf-16"))
    first = ingest_path(Resources.of(factory, data), org_id=label, path=plain, name=plain.name)
    assert (first.status, first.accepted) == ("ingested", 2)
    for other in (gz, zipped, utf16):
        out = ingest_path(Resources.of(factory, data), org_id=label, path=other, name=other.name)
        assert (out.status, out.file_id) == ("duplicate", first.file_id), other.name
    assert lake_lines(data).height == 2
    assert nothing_staged(data)
    with factory() as s:
        (row,) = s.scalars(sa.select(IngestFile)).all()
        assert row.other_names == [gz.name, zipped.name, utf16.name]
        assert row.content_sha256 is not None
    # a report that differs in one line is a report of its own
    changed = tmp_path / "spotify_y_202601_EUR.csv"
    changed.write_bytes(text.replace(b",12,2.50,", b",12,2.60,"))
    assert ingest_path(
        Resources.of(factory, data), org_id=label, path=changed, name=changed.name
    ).status == ("ingested")
    assert lake_lines(data).height == 4


def test_next_months_report_with_the_same_rows_is_not_a_duplicate(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """A DSR's usage records carry no dates (its HEAD does): February's report can repeat
    January's records line for line. It is February's revenue, not a copy of January's."""
    data = tmp_path / "data"
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "dsr" / "basic_block"
    text = (fixture / "input.tsv").read_text()
    jan = tmp_path / "DSR_AuroraRecords_Spotify_Premium_2026-01_DE_1of1_20260203T100000.tsv"
    jan.write_text(text)
    head, rest = text.split("\n", 1)
    feb_head = head.replace("\t2026-01-01\t2026-01-31\t", "\t2026-02-01\t2026-02-28\t")
    assert feb_head != head
    feb = tmp_path / "DSR_AuroraRecords_Spotify_Premium_2026-02_DE_1of1_20260303T100000.tsv"
    feb.write_text(feb_head.replace("MSG-BB-1", "MSG-BB-2") + "\n" + rest)
    first = ingest_path(Resources.of(factory, data), org_id=label, path=jan, name=jan.name)
    second = ingest_path(Resources.of(factory, data), org_id=label, path=feb, name=feb.name)
    assert (first.status, second.status) == ("ingested", "ingested")
    assert second.file_id != first.file_id
    lines = lake_lines(data)
    by_month = dict(lines.group_by("reporting_period").len().iter_rows())
    assert by_month == {"2026-01": first.accepted, "2026-02": second.accepted}
    # the same February report again, gzipped: that one is a duplicate
    import gzip

    again = tmp_path / (feb.name + ".gz")
    again.write_bytes(gzip.compress(feb.read_bytes(), mtime=1))
    third = ingest_path(Resources.of(factory, data), org_id=label, path=again, name=again.name)
    assert (third.status, third.file_id) == ("duplicate", second.file_id)
    assert lake_lines(data).height == lines.height


@pytest.mark.parametrize("backend", BOTH_BACKENDS)  # end to end on PostgreSQL too
@pytest.mark.parametrize("wrapping", ["gzip", "same bytes"])
def test_one_report_ingested_twice_at_once_is_counted_once(
    factory: sessionmaker[Session],
    label: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wrapping: str,
) -> None:
    """Two mapped tasks read the same report at the same time (here under two names, and
    once gzipped). The first is held half-way while the second runs. The same bytes: the
    second finds the first's committed ``pending`` row and waits for it, then records a
    duplicate. The same content in other bytes: each reads it, and of the two commits the
    later is refused by the unique content index and recorded as a duplicate. Either way
    one set of lines, and no store transaction is held open while a file is read."""
    import gzip
    import threading

    from pipelines.ingest import files as ingest

    p = products(factory, label)[0]
    data = tmp_path / "data"
    first = spotify_report(tmp_path / "spotify_a_202601_EUR.csv", p.isrc, p.upc)
    second = tmp_path / (
        "spotify_b_202601_EUR.csv.gz" if wrapping == "gzip" else "spotify_b_202601_EUR.csv"
    )
    text = first.read_bytes()
    second.write_bytes(gzip.compress(text, mtime=1) if wrapping == "gzip" else text)
    holding, release = threading.Event(), threading.Event()
    real = ingest._Run.reconcile

    def held(run: ingest._Run) -> None:
        if threading.current_thread().name == "first":
            holding.set()
            assert release.wait(60)
        real(run)

    monkeypatch.setattr(ingest._Run, "reconcile", held)
    outcomes: dict[str, object] = {}

    def ingest_in_thread(path: Path) -> None:
        try:
            outcomes[threading.current_thread().name] = ingest_path(
                Resources.of(factory, data), org_id=label, path=path, name=path.name
            )
        except BaseException as exc:  # reported below, as the test's failure
            outcomes[threading.current_thread().name] = exc

    a = threading.Thread(target=ingest_in_thread, args=(first,), name="first")
    b = threading.Thread(target=ingest_in_thread, args=(second,), name="second")
    a.start()
    assert holding.wait(60)
    b.start()
    # the same bytes: it waits for the first; other bytes: it is done (not held by a lock)
    b.join(120 if wrapping == "gzip" else 3)
    waiting = b.is_alive()
    release.set()
    a.join(60)
    b.join(60)
    one, two = outcomes["first"], outcomes["second"]
    assert isinstance(one, ingest.IngestOutcome), one
    assert isinstance(two, ingest.IngestOutcome), two
    if wrapping == "gzip":  # read at once: the first to commit counts
        assert not waiting
        (won, won_name), (lost, lost_name) = (two, second.name), (one, first.name)
    else:
        assert waiting
        (won, won_name), (lost, lost_name) = (one, first.name), (two, second.name)
    assert (won.status, won.accepted) == ("ingested", 2)
    assert (lost.status, lost.file_id) == ("duplicate", won.file_id)
    assert lake_lines(data).height == 2
    assert nothing_staged(data)
    with factory() as s:
        (row,) = s.scalars(sa.select(IngestFile)).all()
        assert row.id == won.file_id and row.other_names == [lost_name]
        assert row.original_name == won_name


def test_a_ledger_insert_failing_for_another_reason_is_raised_not_retried(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a lost race (the same bytes committed by another ingestion) is answered by asking
    again; any other integrity error at the ledger insert is raised, once."""
    p = products(factory, label)[0]
    report = spotify_report(tmp_path / "spotify_x_202601_EUR.csv", p.isrc, p.upc)
    calls = 0
    real = Session.flush

    def refuse(self: Session, *args: object, **kwargs: object) -> None:
        nonlocal calls
        if any(isinstance(o, IngestFile) for o in self.new):
            calls += 1
            raise sa.exc.IntegrityError("INSERT", {}, Exception("check constraint failed"))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "flush", refuse)
    with pytest.raises(sa.exc.IntegrityError):
        ingest_path(
            Resources.of(factory, tmp_path / "data"), org_id=label, path=report, name=report.name
        )
    assert calls == 1


def test_lines_without_a_date_in_a_file_without_a_period_are_quarantined_until_told(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    import csv
    import io

    data = tmp_path / "data"
    report = tmp_path / "statement_n.csv"
    write_distributor(report, products(factory, label)[:6], random.Random(3))
    rows = list(csv.reader(io.StringIO(report.read_text())))
    for r in rows[1:]:
        r[0] = ""  # no Statement Period on any line, and none in the file name
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    report.write_text(buf.getvalue())
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert out.status == "quarantined" and out.quarantine is not None
    assert out.quarantine["code"] == "no_period"
    assert lake_lines(data).is_empty() and nothing_staged(data)
    told = ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name, period="2026-01"
    )
    assert told.status == "ingested" and told.accepted > 0
    assert set(lake_lines(data)["reporting_period"]) == {"2026-01"}


def test_a_delivery_holding_reports_for_two_periods_is_refused(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    import zipfile

    p = products(factory, label)[0]
    data = tmp_path / "data"
    january = spotify_report(tmp_path / "spotify_x_202601_EUR.csv", p.isrc, p.upc)
    february = tmp_path / "spotify_x_202602_EUR.csv"
    february.write_text(january.read_text().replace("1.50", "1.70"))
    both = tmp_path / "spotify_2026Q1.zip"
    with zipfile.ZipFile(both, "w") as zf:
        zf.write(january, january.name)
        zf.write(february, february.name)
    out = ingest_path(Resources.of(factory, data), org_id=label, path=both, name=both.name)
    assert out.status == "quarantined" and out.quarantine is not None
    assert out.quarantine["code"] == "mixed_periods"
    assert "spotify_x_202602_EUR.csv is for 2026-02" in out.quarantine["message"]
    assert lake_lines(data).is_empty() and nothing_staged(data)


def test_each_finding_names_the_report_of_the_delivery_it_is_from(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    import zipfile

    p = products(factory, label)[0]
    a = spotify_report(tmp_path / "spotify_a_202601_EUR.csv", p.isrc, p.upc)
    b = tmp_path / "spotify_b_202601_EUR.csv"
    b.write_text(a.read_text().replace(",1.50,", ",1.5x,"))  # line 2 of b
    a.write_text(a.read_text().replace(",2.50,", ",2.5x,"))  # line 3 of a
    both = tmp_path / "spotify_202601.zip"
    with zipfile.ZipFile(both, "w") as zf:
        zf.write(a, a.name)
        zf.write(b, b.name)
    out = ingest_path(
        Resources.of(factory, tmp_path / "data"), org_id=label, path=both, name=both.name
    )
    assert out.status == "ingested"
    assert [(e["file"], e["line_no"], e["field"]) for e in out.errors] == [
        (a.name, 3, "amount"),
        (b.name, 2, "amount"),
    ]


def test_each_line_of_a_zip_names_the_report_it_is_from(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """A zip's members each count their lines from 1: in the lake a line is (file, member,
    line), accepted or rejected, so every line traces back to one row of one report."""
    import zipfile

    p = products(factory, label)[0]
    a = spotify_report(tmp_path / "spotify_a_202601_EUR.csv", p.isrc, p.upc)
    b = spotify_report(tmp_path / "spotify_b_202601_EUR.csv", p.isrc, p.upc)
    for member in (a, b):  # line 2 of each: a currency no one has
        member.write_text(member.read_text().replace(",1.50,EUR", ",1.50,EUX", 1))
    both = tmp_path / "spotify_202601.zip"
    with zipfile.ZipFile(both, "w") as zf:
        zf.write(a, a.name)
        zf.write(b, b.name)
    data = tmp_path / "data"
    out = ingest_path(Resources.of(factory, data), org_id=label, path=both, name=both.name)
    assert out.status == "ingested" and out.lines == 4
    accepted = lake_lines(data)
    rejected = lake_lines(data, "rejected_lines")
    assert accepted.select("member", "line_no").sort("member").rows() == [(a.name, 3), (b.name, 3)]
    assert rejected.select("member", "line_no").sort("member").rows() == [(a.name, 2), (b.name, 2)]
    assert accepted.select("file_id", "line_no").is_duplicated().all()
    assert not accepted.select("file_id", "member", "line_no").is_duplicated().any()
    # a plain file's lines name no member
    single = tmp_path / "spotify_c_202602_EUR.csv"
    spotify_report(single, p.isrc, p.upc)
    ingest_path(Resources.of(factory, data), org_id=label, path=single, name=single.name)
    plain = lake_lines(data).filter(pl.col("reporting_period") == "2026-02")
    assert plain.height == 2 and plain["member"].null_count() == 2


def test_a_lake_written_before_the_member_column_still_reads(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """Parts written before lines carried their archive member sit beside new ones: every
    reader of the lake (runs, suspense, rematch) takes both, the old ones with no member."""
    from pipelines.lake import scan_revenue

    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old, _ = ingest_unknown_isrc(factory, label, tmp_path / "old")
    data, _ = ingest_unknown_isrc(factory, label, tmp_path / "new", "USD", seed=12)
    for part in sorted((old / "lake").glob("revenue_lines/**/*.parquet")):
        target = data / part.relative_to(old)
        target.parent.mkdir(parents=True, exist_ok=True)
        pl.read_parquet(part).drop("member").write_parquet(target)
    files = sorted((data / "lake" / "revenue_lines").glob("**/*.parquet"))
    assert {"member" in pl.read_parquet_schema(f) for f in files} == {True, False}
    for order in (files, files[::-1]):
        lines = scan_revenue(order).collect()
        assert lines.height == sum(pl.read_parquet(f).height for f in files)
        assert lines["member"].null_count() == lines.height  # plain files: no member
    with db.transaction(factory, actor="test") as s:
        assert rebuild_suspense(s, DataDir(data), label) == 1  # one unknown ISRC, in both files
        item = s.scalar(sa.select(SuspenseItem))
        assert item is not None and item.lines == 2
    add_track(factory, label, "GBNBR2699999")
    assert rematch(Resources.of(factory, data), label)["lines_matched"] == 2


def test_unreadable_file_is_quarantined_and_nothing_reaches_the_lake(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    bad = tmp_path / "80012345_0126_GB.txt"
    write_apple(bad, products(factory, label), random.Random(4))
    text = bad.read_text().replace("Extended Partner Share", "Ext Share", 1)
    bad.write_text(text)
    out = ingest_path(Resources.of(factory, data), org_id=label, path=bad, name=bad.name)
    assert out.status == "quarantined"
    assert out.quarantine is not None
    assert out.quarantine["code"] == "missing_column"
    assert "Extended Partner Share" in out.quarantine["message"]
    assert lake_lines(data).is_empty()
    assert (data / "quarantine" / f"org={label}" / f"{out.sha256}.json").exists()


def test_control_total_mismatch_quarantines(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    report = tmp_path / "80012345_0126_GB.txt"
    write_apple(report, products(factory, label), random.Random(5))
    lines = report.read_text().splitlines()
    lines = [("Total_Amount\t999.99" if ln.startswith("Total_Amount") else ln) for ln in lines]
    report.write_text("\n".join(lines) + "\n")
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert out.status == "quarantined"
    assert out.quarantine is not None
    assert out.quarantine["code"] == "control_total_mismatch"
    assert "declared 999.99" in out.quarantine["message"]


def ingest_unknown_isrc(
    factory: sessionmaker[Session],
    org_id: int,
    tmp_path: Path,
    currency: str = "EUR",
    *,
    tracks: int = 1,
    seed: int = 8,
) -> tuple[Path, IngestOutcome]:
    """A Spotify report of ``tracks`` catalogue tracks plus one line whose ISRC
    (GBNBR2699999) is not in the catalogue, ingested: (data dir, outcome)."""
    data = tmp_path / "data"
    report = tmp_path / f"spotify_northbound_202601_{currency}.csv"
    territories = ["US", "CA"] if currency == "USD" else ["DE", "AT"]
    chosen = products(factory, org_id)[:tracks]
    write_spotify(report, chosen, random.Random(seed), currency, territories, unknown_isrc=True)
    out = ingest_path(Resources.of(factory, data), org_id=org_id, path=report, name=report.name)
    assert out.suspense == 1
    return data, out


def test_suspense_is_resolved_once_and_remembered(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data, out = ingest_unknown_isrc(factory, label, tmp_path, "USD", tracks=3, seed=6)
    with db.transaction(factory, actor="test") as s:
        assert rebuild_suspense(s, DataDir(data), label) == 1
        item = s.scalar(sa.select(SuspenseItem))
        assert item is not None
        assert (item.kind.value, item.key, item.reason) == ("isrc", "GBNBR2699999", "unknown_isrc")
        track = s.scalars(sa.select(Track).where(Track.org_id == label)).first()
        assert track is not None
        suspense.resolve(s, label, item.id, track_id=track.id)
    result = rematch(Resources.of(factory, data), label)
    assert result == {
        "files_rewritten": 1,
        "lines_matched": 1,
        "lines_reconverted": 0,
        "lines_upgraded": 0,
        "suspense_items": 0,
    }
    lines = lake_lines(data)
    assert lines.filter(pl.col("isrc") == "GBNBR2699999")["match_method"].to_list() == [
        "isrc_alias"
    ]
    # The next report with the same unknown ISRC matches at ingestion.
    nxt = tmp_path / "spotify_northbound_202602_USD.csv"
    write_spotify(
        nxt, products(factory, label)[:1], random.Random(9), "USD", ["US", "CA"], unknown_isrc=True
    )
    assert (
        ingest_path(Resources.of(factory, data), org_id=label, path=nxt, name=nxt.name).suspense
        == 0
    )
    with factory() as s:
        row = s.get(IngestFile, out.file_id)
        assert row is not None
        assert (row.lines_matched, row.lines_suspense) == (out.matched + 1, 0)


def add_track(
    factory: sessionmaker[Session], org_id: int, isrc: str, release_id: int | None = None
) -> int:
    """A track added to the catalogue after reports were ingested (on the first track's
    release unless told): its id."""
    with db.transaction(factory, actor="test") as s:
        t = s.scalars(sa.select(Track).where(Track.org_id == org_id)).first()
        assert t is not None
        new = service.create(
            s,
            org_id,
            "tracks",
            {
                "release_id": release_id or t.release_id,
                "isrc": isrc,
                "title": "Unreleased Demo",
                "artist_id": t.artist_id,
                "duration_seconds": 200,
                "track_number": 99,
            },
        )
    return int(new["id"] if isinstance(new, dict) else new.id)


def test_new_track_in_catalogue_is_matched_by_rematch(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data, _ = ingest_unknown_isrc(factory, label, tmp_path)
    add_track(factory, label, "GBNBR2699999")
    assert rematch(Resources.of(factory, data), label)["lines_matched"] == 1
    assert lake_lines(data)["match_method"].null_count() == 0


def test_suspense_whose_code_is_now_in_the_catalogue_is_not_matched_by_hand(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """The ISRC was unknown when the report came; the track with it has since been added.
    A manual match now would never apply (the track's own ISRC matches first): the user is
    told to rematch instead, and rematch takes the lines to that track."""
    data, _ = ingest_unknown_isrc(factory, label, tmp_path)
    added = add_track(factory, label, "GBNBR2699999")
    with db.transaction(factory, actor="test") as s:
        assert rebuild_suspense(s, DataDir(data), label) == 1  # not rematched yet
        item = s.scalar(sa.select(SuspenseItem))
        assert item is not None
        other = s.scalars(sa.select(Track).where(Track.id != added)).first()
        assert other is not None
        with pytest.raises(Conflict, match=f"track {added}.*rematch"):
            suspense.resolve(s, label, item.id, track_id=other.id)
    with factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MatchRule)) == 0
    assert rematch(Resources.of(factory, data), label)["suspense_items"] == 0
    matched = lake_lines(data).filter(pl.col("isrc") == "GBNBR2699999")
    assert matched.select("track_id", "match_method").rows() == [(added, "isrc")]


def test_a_forgotten_match_leaves_the_lines_it_matched_where_they_are(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """A UPC matched by hand to a release; a later line with that UPC (and an ISRC no
    track has) matches through the rule at release level. Forgetting the rule changes what
    future lines match, not the lines already matched: rematch may lift such a line to a
    track, never drop it back to suspense."""
    data = tmp_path / "data"

    def report(name: str, isrc: str) -> Path:
        path = tmp_path / name
        path.write_text(
            "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency\n"
            f"GB,premium,u1,{isrc},0009999999996,T,A,10,1.50,GBP\n"
        )
        return path

    first = report("spotify_x_202601_GBP.csv", "")
    assert (
        ingest_path(Resources.of(factory, data), org_id=label, path=first, name=first.name).suspense
        == 1
    )
    with db.transaction(factory, actor="test") as s:
        rebuild_suspense(s, DataDir(data), label)
        item = s.scalar(sa.select(SuspenseItem))
        assert item is not None and (item.kind.value, item.key) == ("upc", "00009999999996")
        release_id = s.scalars(sa.select(Track.release_id)).first()
        rule = suspense.resolve(s, label, item.id, release_id=release_id)
        rule_id = rule.id
    later = report("spotify_x_202602_GBP.csv", "QZZZZ2600001")
    assert (
        ingest_path(Resources.of(factory, data), org_id=label, path=later, name=later.name).matched
        == 1
    )
    rematch(Resources.of(factory, data), label)
    before = lake_lines(data).sort("reporting_period").select("match_method", "release_id")
    assert before.rows() == [("upc_alias", release_id)] * 2
    with db.transaction(factory, actor="test") as s:
        suspense.forget(s, label, rule_id)
    result = rematch(Resources.of(factory, data), label)
    assert result["lines_matched"] == 0 and result["suspense_items"] == 0
    after = lake_lines(data).sort("reporting_period").select("match_method", "release_id")
    assert after.rows() == before.rows()


IDS_AND_TITLE = ("isrc", "upc", "dsp_resource_id", "dsp_release_id", "proprietary_id", "title")


def test_an_unmatched_line_with_a_title_and_no_artist_has_a_suspense_key() -> None:
    """Suspense items are keyed by the line's best identifier; a title without an artist
    is still one (it keyed as null before, and the line never reached the suspense list)."""
    from pipelines.ingest.suspense import suspense_keys

    lines = pl.LazyFrame(
        {
            "isrc": [None, None, "gbnbr2699999"],
            "upc": [None, None, None],
            "dsp_resource_id": [None, None, None],
            "dsp_release_id": [None, None, None],
            "proprietary_id": [None, None, None],
            "title": [" Lost Song ", None, "T"],
            "artist": [None, None, "A"],
        },
        schema=dict.fromkeys((*IDS_AND_TITLE, "artist"), pl.String),
    )
    keyed = suspense_keys(lines).collect()
    assert keyed.select("kind", "key").rows() == [
        ("title_artist", "lost song|"),
        (None, None),  # nothing to key on: only the run's suspense total shows it
        ("isrc", "GBNBR2699999"),
    ]


def test_a_match_made_for_one_dsps_id_never_matches_another_dsps_same_id() -> None:
    """Suspense items and remembered matches on DSP ids are keyed ``service:id``: resolving
    Spotify's track 1712345601 must not send a TikTok sound with the same digits there."""
    from pipelines.ingest.suspense import suspense_keys
    from royalty_engine.matching import match_lines

    cols = (*IDS_AND_TITLE, "artist", "service", "source")
    given = {
        "dsp_resource_id": ["1712345601", "1712345601", "1712345601"],
        "service": ["Spotify", "TikTok", None],
        "source": ["spotify", "tiktok", "spotify"],
    }
    lines = pl.LazyFrame(
        {c: given.get(c, [None, None, None]) for c in cols}, schema=dict.fromkeys(cols, pl.String)
    )
    keys = suspense_keys(lines).collect()["key"].to_list()
    assert keys == ["spotify:1712345601", "tiktok:1712345601", "spotify:1712345601"]
    rules = pl.LazyFrame(
        {"kind": ["dsp_resource_id"], "key": [keys[0]], "track_id": [7], "release_id": [3]}
    )
    empty = pl.LazyFrame(schema={"isrc": pl.String, "track_id": pl.Int64, "release_id": pl.Int64})
    matched = match_lines(
        lines, empty, pl.LazyFrame(schema={"upc": pl.String, "release_id": pl.Int64}), rules
    ).collect()
    assert matched["track_id"].to_list() == [7, None, 7]
    assert matched["suspense_reason"].to_list() == [None, "unknown_dsp_id", None]


def test_a_corrected_fx_rate_reaches_the_lines_already_converted(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """Finance imports the final ECB rate over the preliminary one: rematch converts again
    every line of that currency and month (and only those), with the new rate and source."""
    data = tmp_path / "data"
    with db.transaction(factory, actor="test") as s:
        import_rates(s, label, b"base,quote,period,rate,source\nEUR,GBP,2026-01,0.85,prelim\n")
    p = products(factory, label)[0]
    eur = spotify_report(tmp_path / "spotify_x_202601_EUR.csv", p.isrc, p.upc)
    gbp = tmp_path / "spotify_x_202601_GBP.csv"
    gbp.write_text(eur.read_text().replace(",EUR\n", ",GBP\n"))
    for report in (eur, gbp):
        assert (
            ingest_path(
                Resources.of(factory, data), org_id=label, path=report, name=report.name
            ).accepted
            == 2
        )
    before = lake_lines(data).sort("currency", "line_no")
    assert before["fx_source"].to_list() == ["prelim", "prelim", "identity", "identity"]
    assert (
        rematch(Resources.of(factory, data), label)["lines_reconverted"] == 0
    )  # nothing changed yet
    with db.transaction(factory, actor="test") as s:
        import_rates(s, label, b"base,quote,period,rate,source\nEUR,GBP,2026-01,0.86,final\n")
    result = rematch(Resources.of(factory, data), label)
    assert (result["lines_reconverted"], result["lines_matched"]) == (2, 0)
    after = lake_lines(data).sort("currency", "line_no")
    assert after["fx_rate"].to_list() == [Decimal("0.86"), Decimal("0.86"), Decimal(1), Decimal(1)]
    assert after["fx_source"].to_list() == ["final", "final", "identity", "identity"]
    # 1.50 and 2.50 EUR at 0.86
    assert after["converted_amount"].to_list()[:2] == [Decimal("1.29"), Decimal("2.15")]
    assert after.drop("fx_rate", "fx_source", "converted_amount").equals(
        before.drop("fx_rate", "fx_source", "converted_amount")
    )
    assert rematch(Resources.of(factory, data), label)["files_rewritten"] == 0  # settled


def test_a_release_level_match_reaches_its_track_once_the_track_is_added(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """A line whose ISRC is not in the catalogue but whose UPC is matches the release only
    (track-level splits cannot apply). Once the track is added, rematch takes it to the track,
    as a line ingested then would be."""
    data = tmp_path / "data"
    p = products(factory, label)[0]
    report = spotify_report(tmp_path / "spotify_bonus_202601_EUR.csv", "GBNBR2699998", p.upc)
    ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    first = lake_lines(data)
    assert set(first["match_method"]) == {"upc"} and first["track_id"].null_count() == 2
    assert (
        rematch(Resources.of(factory, data), label)["files_rewritten"] == 0
    )  # nothing new: left alone
    new_id = add_track(factory, label, "GBNBR2699998", release_id=first["release_id"][0])
    result = rematch(Resources.of(factory, data), label)
    assert (result["lines_upgraded"], result["lines_matched"]) == (2, 0)
    after = lake_lines(data)
    assert set(after["match_method"]) == {"isrc"} and set(after["track_id"]) == {new_id}


def test_a_rematch_that_failed_or_ran_twice_leaves_the_ledger_counts_right(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lake is rewritten before the ledger's transaction: if that transaction fails, the
    retry finds the lines matched already; the ledger's counts must still come right (they
    are set from the lake, not added to)."""
    from pipelines.ingest import suspense as suspense_module

    data, out = ingest_unknown_isrc(factory, label, tmp_path)
    add_track(factory, label, "GBNBR2699999")
    real = suspense_module.rebuild_suspense

    def database_gone(*args: object, **kwargs: object) -> int:
        raise sa.exc.OperationalError("UPDATE", {}, Exception("the database went away"))

    monkeypatch.setattr(suspense_module, "rebuild_suspense", database_gone)
    with pytest.raises(sa.exc.OperationalError):
        rematch(Resources.of(factory, data), label)
    assert lake_lines(data)["match_method"].null_count() == 0  # the lake was rewritten
    monkeypatch.setattr(suspense_module, "rebuild_suspense", real)
    for _ in range(2):  # the retry, then once more
        rematch(Resources.of(factory, data), label)
        with factory() as s:
            row = s.get(IngestFile, out.file_id)
            assert row is not None
            assert (row.lines_matched, row.lines_suspense) == (out.accepted, 0)


@pytest.mark.parametrize("backend", BOTH_BACKENDS)  # end to end on PostgreSQL too
def test_rates_into_and_out_of_weak_currencies_are_stored_exactly(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """1 USD = 16,250.5 IDR and 1 IDR = 0.000048123457 GBP (12 decimals): both stored and
    applied exactly on both backends; more than 12 decimals, or 10^16, is a row error."""
    from schemas.errors import ValidationFailed
    from schemas.store.models import FxRate

    with db.transaction(factory, actor="test") as s:
        import_rates(
            s,
            label,
            b"base,quote,period,rate,source\n"
            b"USD,IDR,2026-01,16250.5,BI\n"
            b"IDR,GBP,2026-01,0.000048123457,BoE\n",
        )
    with factory() as s:
        stored = {(r.base, r.quote): r.rate for r in s.scalars(sa.select(FxRate))}
    assert stored[("USD", "IDR")] == Decimal("16250.5")
    assert stored[("IDR", "GBP")] == Decimal("0.000048123457")
    for bad in ("0.0000481234567", "10000000000000000"):
        with pytest.raises(ValidationFailed) as caught, db.transaction(factory, actor="t") as s:
            import_rates(
                s, label, f"base,quote,period,rate,source\nIDR,GBP,2026-02,{bad},x\n".encode()
            )
        assert [(e.field, e.row) for e in caught.value.errors] == [("rate", 2)]  # CSV line
    p = products(factory, label)[0]
    report = tmp_path / "spotify_id_202601_IDR.csv"
    report.write_text(
        "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency\n"
        f"ID,premium,u1,{p.isrc},{p.upc},T,A,1000000,2500000000,IDR\n"
    )
    out = ingest_path(
        Resources.of(factory, tmp_path / "data"), org_id=label, path=report, name=report.name
    )
    assert out.status == "ingested"
    (line,) = lake_lines(tmp_path / "data").iter_rows(named=True)
    # 2,500,000,000 IDR x 0.000048123457 = 120,308.6425 GBP, exactly
    assert line["fx_rate"] == Decimal("0.000048123457")
    assert line["converted_amount"] == Decimal("120308.6425")


# --- chunked ingestion: parts, staging, atomicity ---------------------------------------------

IDENTITY = ("org_id", "file_id", "track_id", "release_id")  # ids differ between two orgs


def second_label(factory: sessionmaker[Session], slug: str) -> int:
    org_id = make_org(factory, slug)
    with db.transaction(factory, actor="test") as s:
        s.get(Organisation, org_id).default_currency = "GBP"  # type: ignore[union-attr]
        build(s, org_id, random.Random(7))
        import_rates(s, org_id, b"base,quote,period,rate,source\nEUR,GBP,2026-01,0.85,ECB\n")
    return org_id


def by_line(data_dir: Path, org_id: int, table: str = "revenue_lines") -> pl.DataFrame:
    root = data_dir / "lake" / table / f"org={org_id}"
    files = sorted(root.glob("**/*.parquet"))
    return pl.read_parquet(files).drop(IDENTITY, strict=False).sort("line_no")


def nothing_staged(data_dir: Path) -> bool:
    return not any((data_dir / "staging").glob("**/*")) if (data_dir / "staging").exists() else True


def test_a_dsr_in_many_chunks_gives_the_same_lake_as_one(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    from demo.reports import write_dsr_report

    one, many = second_label(factory, "one"), second_label(factory, "many")
    report = tmp_path / "DSR_AuroraRecords_Spotify_Premium_2026-01_WW_1of1_20260205T000000.tsv.gz"
    write_dsr_report(report, products(factory, one), seed=3, lines=3000)
    data = tmp_path / "data"
    whole = ingest_path(Resources.of(factory, data), org_id=one, path=report, name=report.name)
    parts = ingest_path(
        Resources.of(factory, data), org_id=many, path=report, name=report.name, chunk_bytes=8 << 10
    )
    assert whole.status == parts.status == "ingested"
    folder = data / "lake" / "revenue_lines" / f"org={many}" / "period=2026-01" / "source=dsr"
    assert len(list((folder / f"file={parts.file_id}").glob("part-*.parquet"))) > 3
    assert_frame_equal(by_line(data, many), by_line(data, one))
    keep = ("lines", "accepted", "rejected", "matched", "suspense", "totals", "error_count")
    assert [getattr(parts, k) for k in keep] == [getattr(whole, k) for k in keep]
    assert parts.outputs["expectations"] == whole.outputs["expectations"]
    assert nothing_staged(data)


def test_a_statement_in_chunks_moves_early_parts_to_the_files_period(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The period of a layout that takes it from its lines is known only at the end: parts
    staged before (here: December lines) move to it and are converted at its rate."""
    one, many = second_label(factory, "one"), second_label(factory, "many")
    report = tmp_path / "statement_q.csv"
    write_distributor(report, products(factory, one)[:40], random.Random(8))
    rows = report.read_text().splitlines()
    rows[1:6] = [r.replace("2026-01", "2025-12", 1) for r in rows[1:6]]
    report.write_text("\n".join(rows) + "\n")
    data = tmp_path / "data"
    whole = ingest_path(Resources.of(factory, data), org_id=one, path=report, name=report.name)
    parts = ingest_path(
        Resources.of(factory, data), org_id=many, path=report, name=report.name, chunk_bytes=300
    )
    assert whole.reporting_periods == parts.reporting_periods == ["2026-01"]
    lines = by_line(data, many)
    assert set(lines["reporting_period"]) == {"2026-01"}
    assert set(lines["fx_source"]) == {"ECB"}
    assert_frame_equal(lines, by_line(data, one))
    assert_frame_equal(by_line(data, many, "rejected_lines"), by_line(data, one, "rejected_lines"))
    assert not list((data / "lake").glob(f"*/org={many}/period=2025-12"))
    assert (parts.lines, parts.accepted, parts.rejected) == (whole.lines, whole.accepted, 2)
    assert parts.errors == whole.errors


def test_a_mismatch_found_at_the_end_leaves_nothing_in_the_lake(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    report = tmp_path / "80012345_0126_GB.txt"
    write_apple(report, products(factory, label), random.Random(5))
    lines = report.read_text().splitlines()
    lines = [("Total_Amount\t999.99" if ln.startswith("Total_Amount") else ln) for ln in lines]
    report.write_text("\n".join(lines) + "\n")
    out = ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name, chunk_bytes=256
    )
    assert out.status == "quarantined"
    assert out.quarantine is not None and out.quarantine["code"] == "control_total_mismatch"
    assert lake_lines(data).is_empty() and lake_lines(data, "rejected_lines").is_empty()
    assert nothing_staged(data)
    with factory() as s:
        (row,) = s.scalars(sa.select(IngestFile)).all()
        assert row.status.value == "quarantined"


def test_a_foot_mismatch_in_a_chunked_dsr_is_quarantined_whole(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    from demo.dsr_writer import write_dsr

    data = tmp_path / "data"
    report = tmp_path / "DSR_AuroraRecords_Spotify_Premium_2026-01_WW_1of1_20260205T000000.tsv"
    write_dsr(report, lines=3000, seed=6)
    text = report.read_text().splitlines()
    foot = text[-1].split("\t")
    foot[4] = str(int(foot[4]) - 1)  # NumberOfBlocksInFile
    report.write_text("\n".join([*text[:-1], "\t".join(foot)]) + "\n")
    out = ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name, chunk_bytes=4096
    )
    assert out.quarantine is not None and out.quarantine["code"] == "foot_mismatch"
    assert lake_lines(data).is_empty()
    assert nothing_staged(data)


def test_a_hyphenated_isrc_in_a_dsr_is_normalised_before_validation_and_matching(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """The DSR parser hands identifiers over as written; each chunk's identifiers are
    normalised once (schemas.identifiers) before validation and matching, so an ISRC written
    ``gb-abc-26-00001`` (or with a Unicode dash) is neither warned ``invalid_isrc`` nor left
    unnormalised in the lake, and still matches its track."""
    import gzip

    from demo.reports import write_dsr_report

    ours = products(factory, label)[:6]
    report = tmp_path / "DSR_Northbound_Spotify_Premium_2026-01_WW_1of1_20260205T000000.tsv.gz"
    write_dsr_report(report, ours, seed=3, lines=60)
    text = gzip.decompress(report.read_bytes()).decode()
    for i, p in enumerate(ours):
        dash = "-" if i % 2 else "\u2010"
        messy = dash.join([p.isrc[:2], p.isrc[2:5], p.isrc[5:7], p.isrc[7:]])
        text = text.replace(f"\t{p.isrc}\t", f"\t{messy.lower() if i % 3 else messy}\t")
    assert not any(f"\t{p.isrc}\t" in text for p in ours)  # every ISRC is written messily
    report.write_bytes(gzip.compress(text.encode(), mtime=0))
    data = tmp_path / "data"
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert out.status == "ingested", out
    assert [e for e in out.errors if e["code"] == "invalid_isrc"] == []
    assert out.matched == out.accepted > 0
    lines = lake_lines(data)
    assert set(lines["isrc"]) <= {p.isrc for p in ours}
    assert set(lines["match_method"]) == {"isrc"}


def test_a_failure_half_way_leaves_nothing_and_no_ledger_row(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest import files as ingest

    data = tmp_path / "data"
    res = Resources.of(factory, data)
    report = tmp_path / "statement_c.csv"
    write_distributor(report, products(factory, label)[:40], random.Random(9))
    calls = {"n": 0}
    real = ingest._Run.chunk

    def failing(self: ingest._Run, piece: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real(self, piece)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest._Run, "chunk", failing)
    with pytest.raises(OSError, match="disk full"):
        ingest_path(res, org_id=label, path=report, name=report.name, chunk_bytes=300)
    assert lake_lines(data).is_empty()
    assert nothing_staged(data)
    with factory() as s:
        assert s.scalars(sa.select(IngestFile)).all() == []
    monkeypatch.setattr(ingest._Run, "chunk", real)
    again = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert again.status == "ingested"
    assert lake_lines(data).height == again.accepted


def test_a_failed_commit_takes_the_lines_back_out_of_the_lake(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts move into the lake just before the ledger row commits: if the commit fails,
    they must go (a retry gets another file id, and they would be counted twice)."""
    from pipelines.ingest import files as ingest

    data = tmp_path / "data"
    report = tmp_path / "statement_e.csv"
    write_distributor(report, products(factory, label)[:20], random.Random(5))
    real = ingest._finish

    def then_the_commit_fails(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)  # type: ignore[arg-type]
        assert not lake_lines(data).is_empty()  # promoted ...
        raise sa.exc.OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(ingest, "_finish", then_the_commit_fails)
    with pytest.raises(sa.exc.OperationalError):
        ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert lake_lines(data).is_empty()  # ... and taken back
    assert lake_lines(data, "rejected_lines").is_empty()
    assert nothing_staged(data)
    assert not list((data / "reports" / "ingest").glob("org=*/file=*"))
    with factory() as s:
        assert s.scalars(sa.select(IngestFile)).all() == []
    monkeypatch.setattr(ingest, "_finish", real)
    again = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert again.status == "ingested" and lake_lines(data).height == again.accepted


def test_a_part_write_failing_in_the_background_leaves_nothing_and_no_ledger_row(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts are written by a worker thread while the next chunk is parsed: its failure must
    surface in the ingestion (not vanish with the thread) and roll everything back."""
    import threading

    from pipelines import lake
    from pipelines.ingest import files as ingest

    data = tmp_path / "data"
    res = Resources.of(factory, data)
    report = tmp_path / "statement_d.csv"
    write_distributor(report, products(factory, label)[:40], random.Random(11))
    real = lake.write_parquet
    writers: list[str] = []

    def failing(frame: pl.DataFrame, path: Path) -> Path:
        writers.append(threading.current_thread().name)
        if len(writers) == 2:
            raise OSError("no space left on device")
        return real(frame, path)

    monkeypatch.setattr(ingest.lake, "write_parquet", failing)
    with pytest.raises(OSError, match="no space left"):
        ingest_path(res, org_id=label, path=report, name=report.name, chunk_bytes=300)
    assert writers and all(name.startswith("tm-write") for name in writers)
    assert lake_lines(data).is_empty()
    assert nothing_staged(data)
    with factory() as s:
        assert s.scalars(sa.select(IngestFile)).all() == []
    monkeypatch.setattr(ingest.lake, "write_parquet", real)
    again = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert again.status == "ingested" and lake_lines(data).height == again.accepted


def test_one_file_failing_never_stops_the_batch(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tunemantra ingest DIR``: a file whose detection fails on a fault of ours (the csv
    module's error, as CR-only line ends once raised) is quarantined as ``internal_error``;
    one failing on anything else (here a RuntimeError) is reported ``failed`` with the error,
    kept out of the ledger (the next run tries it again); the files after both are read."""
    import csv

    from connectors.formats import registry
    from pipelines.ingest.drops import ingest_sources

    p = products(factory, label)[0]
    drop = tmp_path / "drop"
    drop.mkdir()
    for month in ("01", "02", "03", "04"):
        report = spotify_report(drop / f"spotify_x_2026{month}_EUR.csv", p.isrc, p.upc)
        report.write_text(report.read_text().replace(",10,", f",1{month},"))
    real = registry.detect

    def detect(filename: str, head: bytes, **kw: object) -> object:
        if "202602" in filename:
            raise csv.Error("new-line character seen in unquoted field")
        if "202603" in filename:
            raise RuntimeError("a fault nobody foresaw")
        return real(filename, head, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "detect", detect)
    data = tmp_path / "data"
    outs = list(ingest_sources(Resources.of(factory, data), org_id=label, sources=[str(drop)]))
    assert [o.status for o in outs] == ["ingested", "quarantined", "failed", "ingested"]
    assert outs[1].quarantine is not None and outs[1].quarantine["code"] == "internal_error"
    assert "Error: new-line character" in outs[1].quarantine["message"]
    assert outs[2].errors[0]["code"] == "ingest_failed"
    assert outs[2].errors[0]["message"] == "RuntimeError: a fault nobody foresaw"
    assert outs[2].errors[0]["file"] == "spotify_x_202603_EUR.csv"
    assert lake_lines(data).height == 4
    with factory() as s:
        names = s.scalars(sa.select(IngestFile.original_name).order_by(IngestFile.id)).all()
    assert "spotify_x_202603_EUR.csv" not in names  # not recorded: tried again next time
    monkeypatch.setattr(registry, "detect", real)
    again = list(ingest_sources(Resources.of(factory, data), org_id=label, sources=[str(drop)]))
    assert [o.status for o in again] == ["duplicate", "ingested", "ingested", "duplicate"]


@pytest.mark.parametrize("readable", [False, True], ids=["no_line_readable", "one_readable"])
def test_different_unreadable_lines_are_never_the_same_content(
    factory: sessionmaker[Session], label: int, tmp_path: Path, readable: bool
) -> None:
    """The content fingerprint takes in what the parser could not read too: two reports whose
    unreadable lines differ (every line, or all but one) are two reports, not a duplicate;
    the same report re-sent gzipped still is one. (A report of nothing but unreadable lines is
    quarantined, whatever share of rejected lines is allowed: two such are two quarantines.)"""
    import gzip

    from pipelines.settings import Settings

    data = tmp_path / "data"
    res = Resources.of(factory, data, Settings(data_dir=data, ingest_max_rejected_share=1.0))
    p = products(factory, label)[0]
    head = "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency\n"
    good = f"GB,premium,u0,{p.isrc},{p.upc},T,A,10,1.50,EUR\n" if readable else ""
    outs = []
    for i, amount in enumerate(("1.5x", "2.5x")):
        report = tmp_path / f"r{i}" / "spotify_x_202601_EUR.csv"
        report.parent.mkdir()
        report.write_text(
            head
            + good
            + f"GB,premium,u1,{p.isrc},{p.upc},T,A,10,{amount},EUR\n"
            + f"GB,premium,u2,{p.isrc},{p.upc},T,A,12,{amount}0,EUR\n"
        )
        outs.append(ingest_path(res, org_id=label, path=report, name=report.name))
    if not readable:
        assert [(o.status, o.quarantine["code"]) for o in outs if o.quarantine] == [
            ("quarantined", "rejected_lines"),
            ("quarantined", "rejected_lines"),
        ]
        assert outs[0].file_id != outs[1].file_id
        return
    assert [o.status for o in outs] == ["ingested", "ingested"]
    assert outs[0].file_id != outs[1].file_id
    assert [o.rejected for o in outs] == [2, 2]
    wrapped = tmp_path / "spotify_x_202601_EUR.csv.gz"
    wrapped.write_bytes(gzip.compress((tmp_path / "r1" / "spotify_x_202601_EUR.csv").read_bytes()))
    again = ingest_path(res, org_id=label, path=wrapped, name=wrapped.name)
    assert (again.status, again.file_id) == ("duplicate", outs[1].file_id)


def test_a_declared_total_its_lines_do_not_reach_is_quarantined_even_with_unreadable_lines(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """The rule: per currency, what the file declares (its trailer, its FOOT) must equal what
    was read, accepted + rejected. A line the parser could not read has no amount: a file
    whose readable lines do not reach its declared total is quarantined, whatever the reason
    (a lost line, an unreadable amount), and says how far apart the totals are."""
    data = tmp_path / "data"
    report = tmp_path / "80012345_0126_GB.txt"
    write_apple(report, products(factory, label), random.Random(5))
    rows = report.read_text().split("\n")
    header = rows[0].split("\t")
    col = header.index("Extended Partner Share")
    cells = rows[1].split("\t")
    cells[col] = cells[col] + "x"  # an unreadable amount: the line is a row error
    rows[1] = "\t".join(cells)
    report.write_text("\n".join(rows))
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert out.status == "quarantined" and out.quarantine is not None
    assert out.quarantine["code"] == "control_total_mismatch"
    message = out.quarantine["message"]
    assert "declared " in message and "lines sum to " in message
    assert "1 line could not be read" in message
    assert lake_lines(data).is_empty() and nothing_staged(data)


def apple_report(path: Path, factory: sessionmaker[Session], org_id: int, seed: int) -> Path:
    """A demo Apple report moved to fiscal July 2026 (28 June to 1 August)."""
    write_apple(path, products(factory, org_id), random.Random(seed))
    text = path.read_text().replace("12/28/2025", "06/28/2026").replace("01/31/2026", "08/01/2026")
    path.write_text(text)
    return path


def test_an_apple_report_belongs_to_the_fiscal_month_its_file_name_names(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """Apple's fiscal July 2026 runs from 28 June to 1 August: its report is July's, not
    August's (the month its last day falls in). A name without the month: the lines say."""
    data = tmp_path / "data"
    report = apple_report(tmp_path / "80012345_0726_GB.txt", factory, label, 5)
    out = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert (out.status, out.format, out.rejected) == ("ingested", "apple", 0)
    assert set(lake_lines(data)["reporting_period"]) == {"2026-07"}
    # the name says fiscal August: its lines (28 June to 1 August) are outside that month,
    # every one rejected: the file is quarantined, not ingested
    other = apple_report(tmp_path / "80012345_0826_GB.txt", factory, label, 6)
    moved = ingest_path(
        Resources.of(factory, tmp_path / "other"), org_id=label, path=other, name=other.name
    )
    assert moved.rejected == moved.lines and moved.lines > 0
    assert moved.quarantine is not None and moved.quarantine["code"] == "rejected_lines"
    # renamed by hand, without the fiscal month: the month the usage ends in, as before
    bare = apple_report(tmp_path / "apple_sales.txt", factory, label, 7)
    plain = ingest_path(
        Resources.of(factory, tmp_path / "bare"),
        org_id=label,
        path=bare,
        name=bare.name,
        format="apple",
    )
    assert plain.status == "ingested"
    assert set(lake_lines(tmp_path / "bare")["reporting_period"]) == {"2026-08"}
