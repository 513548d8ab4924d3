"""DDEX DSR flat files: golden files, integrity checks, the allocation property, writer round trip.

Golden cases are ``tests/fixtures/formats/dsr/<case>/``: ``input.tsv`` (or ``input.tsv.gz``),
``case.json`` (delivered name, expected meta or rejection), ``expected.csv`` (PARSED lines) and
``expected_errors.json``. Every expected amount was checked by hand (see each case's description).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import tempfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors.formats import registry
from connectors.formats.base import REGISTRY, FileRejected, ParsedFile
from connectors.formats.dsr import DsrParser, iso_period
from demo.dsr_writer import comment, dsr_filename, gtin13, record, write_dsr
from schemas.revenue import PARSED
from tests.conftest import examples

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats" / "dsr"
CASES = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
PARSER = DsrParser()
NAME = "DSR_AuroraRecords_Spotify_Premium_2026-01_DE_1of1_20260203T100000.tsv"
UNIT = Decimal("1e-12")


def _case(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((path / "case.json").read_text())
    return info


def _parse_case(path: Path, tmp_path: Path) -> ParsedFile:
    """Parse a case as the pipeline would: a ``.gz`` is decompressed first."""
    info = _case(path)
    src = next(path.glob("input.*"))
    name = info["filename"]
    if src.name.endswith(".gz"):
        plain = tmp_path / "plain.tsv"
        plain.write_bytes(gzip.decompress(src.read_bytes()))
        src, name = plain, name.removesuffix(".gz")
    return PARSER.parse(src, name)


def _expected_lines(path: Path) -> pl.DataFrame:
    text = pl.read_csv(path / "expected.csv", infer_schema=False)
    return text.select(
        pl.col(name).str.to_date("%Y-%m-%d") if dtype == pl.Date() else pl.col(name).cast(dtype)
        for name, dtype in PARSED.items()
    )


def _totals(parsed: ParsedFile) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for currency, amount in parsed.lines.select("currency", "amount").iter_rows():
        out[currency] = out.get(currency, Decimal(0)) + amount
    return out


def _write(tmp: Path, lines: list[str], name: str = NAME) -> Path:
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _head(profile: str = "BasicAudioProfile", version: str = "1.2", **cells: object) -> str:
    base: dict[str, object] = {
        "MessageVersion": "dsrf/1.4/1.4/1.4",
        "Profile": profile,
        "ProfileVersion": version,
        "MessageId": "MSG-T",
        "MessageCreatedDateTime": "2026-02-03T10:00:00Z",
        "FileNumber": 1,
        "NumberOfFiles": 1,
        "UsageStartDate": "2026-01",
        "UsageEndDate": "2026-01",
        "SenderPartyId": "PADPIDA2011072101T",
        "SenderName": "Spotify",
    }
    return record("HEAD", **(base | cells))


def _summary(sid: str = "S1", revenue: str = "10.00", usages: int = 0, **cells: object) -> str:
    base: dict[str, object] = {
        "SummaryRecordId": sid,
        "CommercialModel": "SubscriptionModel",
        "UseType": "OnDemandStream",
        "Territory": "DE",
        "ServiceDescription": "Premium",
        "Usages": usages,
        "CurrencyOfReporting": "EUR",
        "NetRevenue": revenue,
        "ContentCategory": "Music",
    }
    return record("SY02.02", **(base | cells))


def _block(block: str = "B1") -> list[str]:
    return [
        record("RE01", BlockId=block, ReleaseReference="R0", DspReleaseId=f"REL-{block}",
               ICPN=gtin13("060243500001"), DisplayArtistName="Aurora Vale", Title="Album"),
        record("AS01.01", BlockId=block, ResourceReference="A1", DspResourceId=f"RES-{block}",
               ISRC="GBAYE2600001", Title="Track", DisplayArtistName="Aurora Vale",
               ResourceType="SoundRecording"),
    ]  # fmt: skip


def _stream(streams: object, sid: str = "S1", block: str = "B1", res: str = "A1") -> str:
    return record(
        "SU02", BlockId=block, SummaryRecordId=sid, SalesTransactionId="T",
        TransactedResource=res, IsRoyaltyBearing="true", NumberOfStreams=streams,
    )  # fmt: skip


def _download(usages: int, returns: int, sid: str = "S1", block: str = "B1") -> str:
    return record(
        "SU01", BlockId=block, SummaryRecordId=sid, SalesTransactionId="T",
        TransactedResource="A1", IsRoyaltyBearing="true", SalesUpgrade="false",
        Usages=usages, Returns=returns,
    )  # fmt: skip


def _file(body: list[str], *, summaries: int = 1, blocks: int = 1, head: str = "") -> list[str]:
    """HEAD + body + a FOOT whose counts match."""
    lines = [head or _head(), *body]
    n = len(lines) + 1
    return [*lines, record("FOOT", NumberOfLinesInFile=n, NumberOfLinesInReport=n,
                                  NumberOfSummaryRecords=summaries, NumberOfBlocksInFile=blocks,
                                  NumberOfBlocksInReport=blocks)]  # fmt: skip


# --------------------------------------------------------------------------------------------
# golden files


def test_every_required_case_is_shipped() -> None:
    assert {p.name for p in CASES} >= {
        "basic_block", "single_record", "ugc", "multifile_1of2", "multifile_2of2",
        "foot_mismatch", "truncated", "bad_number", "unknown_summary", "comments", "gzipped",
    }  # fmt: skip
    assert (FIXTURES / "gzipped" / "input.tsv.gz").exists()


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden(case: Path, tmp_path: Path) -> None:
    info = _case(case)
    if "rejected" in info:
        with pytest.raises(FileRejected) as excinfo:
            _parse_case(case, tmp_path)
        assert excinfo.value.code == info["rejected"]["code"]
        assert info["rejected"]["message_contains"] in excinfo.value.message
        return
    parsed = _parse_case(case, tmp_path)
    assert parsed.meta.format == "dsr"
    assert parsed.lines.schema == pl.Schema(PARSED)
    assert_frame_equal(parsed.lines, _expected_lines(case))
    errors_file = case / "expected_errors.json"
    expected_errors = json.loads(errors_file.read_text()) if errors_file.exists() else []
    assert [
        {"row": e.row, "field": e.field, "code": e.code, "message": e.message}
        for e in parsed.errors
    ] == expected_errors
    assert all(e.file == info["filename"].removesuffix(".gz") for e in parsed.errors)
    assert parsed.drift == info.get("drift", [])
    # nothing lost: every usage record is a parsed line or a row error, never both
    bad_rows = {e.row for e in parsed.errors}
    assert not bad_rows & set(parsed.lines["line_no"].to_list())
    assert parsed.lines.height + len(bad_rows) == parsed.meta.extra["usage_records"]
    meta = info["meta"]
    assert parsed.meta.period_start == dt.date.fromisoformat(meta["period_start"])
    assert parsed.meta.period_end == dt.date.fromisoformat(meta["period_end"])
    assert parsed.meta.declared_lines == meta["declared_lines"]
    assert parsed.meta.declared_lines == parsed.meta.extra["lines_in_file"]
    declared = {k: Decimal(v) for k, v in meta["declared_totals"].items()}
    assert parsed.meta.declared_totals == declared
    if not parsed.errors:  # a clean file reconciles to the cent (to the 10^-12 in fact)
        assert _totals(parsed) == declared
    assert parsed.meta.file_number == meta.get("file_number", 1)
    assert parsed.meta.number_of_files == meta.get("number_of_files", 1)
    if "report_declared_totals" in meta:
        report = parsed.meta.extra["report_declared_totals"]
        assert {k: Decimal(v) for k, v in report.items()} == {
            k: Decimal(v) for k, v in meta["report_declared_totals"].items()
        }


def test_raw_hash_is_sha256_of_the_line_as_written(tmp_path: Path) -> None:
    case = FIXTURES / "basic_block"
    parsed = _parse_case(case, tmp_path)
    text = (case / "input.tsv").read_bytes().split(b"\n")
    for line_no, digest in parsed.lines.select("line_no", "raw_hash").iter_rows():
        assert digest == hashlib.sha256(text[line_no - 1]).hexdigest()


def test_gzipped_delivery_gives_the_same_lines(tmp_path: Path) -> None:
    plain = _parse_case(FIXTURES / "basic_block", tmp_path / "a")
    info = _case(FIXTURES / "gzipped")
    (delivered,) = registry.parse_file(
        FIXTURES / "gzipped" / "input.tsv.gz", info["filename"], tmp_path
    )
    assert delivered.meta.format == "dsr"
    assert_frame_equal(delivered.lines, plain.lines)


def test_comment_and_blank_lines_are_counted_not_parsed(tmp_path: Path) -> None:
    parsed = _parse_case(FIXTURES / "comments", tmp_path)
    assert parsed.meta.extra["comment_lines"] == 5
    assert parsed.meta.extra["blank_lines"] == 1
    assert parsed.meta.declared_lines == 15 == parsed.meta.extra["lines_in_file"]
    assert parsed.lines["line_no"].to_list() == [9, 13]  # physical line numbers
    assert parsed.meta.extra["profile_version"] == "1.1"


def test_a_foot_that_does_not_count_comment_lines_is_rejected(tmp_path: Path) -> None:
    """NumberOfLinesInFile includes the '#' and empty lines: a writer that skips them is caught."""
    lines = (FIXTURES / "comments" / "input.tsv").read_text().splitlines()
    data_only = sum(1 for ln in lines if ln and not ln.startswith("#"))
    lines[-1] = lines[-1].replace("FOOT\t15\t15", f"FOOT\t{data_only}\t{data_only}")
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert excinfo.value.code == "foot_mismatch"
    assert f"NumberOfLinesInFile is {data_only} but the file has 15 lines" in excinfo.value.message


def test_multifile_report_adds_up_to_the_report_totals(tmp_path: Path) -> None:
    one = _parse_case(FIXTURES / "multifile_1of2", tmp_path)
    two = _parse_case(FIXTURES / "multifile_2of2", tmp_path)
    assert (one.meta.file_number, one.meta.number_of_files) == (1, 2)
    assert (two.meta.file_number, two.meta.number_of_files) == (2, 2)
    assert one.meta.message_id == two.meta.message_id
    both = _totals(one)["GBP"] + _totals(two)["GBP"]
    assert both == Decimal(one.meta.extra["report_declared_totals"]["GBP"]) == Decimal("12.01")
    assert two.meta.extra["lines_in_report"] == 18  # FOOT of the last file: both files' lines


def test_file_name_x_of_y_must_match_head(tmp_path: Path) -> None:
    src = FIXTURES / "multifile_1of2" / "input.tsv"
    wrong = dsr_filename(
        recipient="AuroraRecords", sender="Spotify", service="Premium", period="2026-01",
        territory="GB", file_number=2, number_of_files=2,
    )  # fmt: skip
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(src, wrong)
    assert excinfo.value.code == "xofy_mismatch"
    assert "2of2" in excinfo.value.message and "FileNumber 1" in excinfo.value.message


# --------------------------------------------------------------------------------------------
# structure and integrity


def test_missing_head_is_rejected(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), _stream(1)])[1:]
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert excinfo.value.code == "missing_head"


def test_a_second_head_is_rejected(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), _head(), _stream(1)])
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert excinfo.value.code == "misplaced_record"


def test_unsupported_profile_is_rejected(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), _stream(1)],
                  head=_head("AudioVisualProfile", "1.2"))  # fmt: skip
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert excinfo.value.code == "unsupported_profile"
    assert "BasicAudioProfile 1.2" in excinfo.value.message


def test_summary_count_mismatch_is_named(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), _stream(1)], summaries=2)
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert excinfo.value.code == "foot_mismatch"
    assert excinfo.value.field == "NumberOfSummaryRecords"
    assert "NumberOfSummaryRecords is 2 but the file has 1 summary records" in excinfo.value.message


def test_unreadable_foot_count_is_rejected(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), _stream(1)])
    lines[-1] = lines[-1].replace("FOOT\t6", "FOOT\tsix")
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert (excinfo.value.code, excinfo.value.field) == ("foot_invalid", "NumberOfLinesInFile")


def test_duplicate_summary_id_is_rejected(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), _summary(), *_block(), _stream(1)], summaries=2)
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(_write(tmp_path, lines), NAME)
    assert excinfo.value.code == "duplicate_summary"


def test_unknown_record_type_is_a_row_error_and_counted(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), "ZZ99\tB1\tsomething", _stream(1)])
    parsed = PARSER.parse(_write(tmp_path, lines), NAME)
    assert [(e.row, e.field, e.code) for e in parsed.errors] == [
        (5, "RecordType", "unknown_record_type")
    ]
    assert parsed.lines["amount"].to_list() == [Decimal("10")]


def test_older_record_version_is_read_and_reported_as_drift(tmp_path: Path) -> None:
    old = record(
        "SY02.01", SummaryRecordId="S1", CommercialModel="SubscriptionModel",
        UseType="OnDemandStream", Territory="DE", ServiceDescription="Premium", Usages=1,
        Currency="EUR", NetRevenue="2.50",
    )  # fmt: skip
    parsed = PARSER.parse(_write(tmp_path, _file([old, *_block(), _stream(1)])), NAME)
    assert parsed.drift == ["record type SY02.01 read as SY02.02 (the profile's version)"]
    assert parsed.lines.select("amount", "currency").row(0) == (Decimal("2.5"), "EUR")


def test_crlf_line_endings_give_the_same_amounts_and_hashes(tmp_path: Path) -> None:
    lines = _file([_summary(revenue="1.00", usages=3), *_block(), _stream(1), _stream(2)])
    lf = PARSER.parse(_write(tmp_path, lines), NAME)
    crlf_path = tmp_path / "crlf" / NAME
    crlf_path.parent.mkdir()
    crlf_path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    crlf = PARSER.parse(crlf_path, NAME)
    assert_frame_equal(crlf.lines, lf.lines)


def test_invalid_utf8_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, _file([_summary(usages=1), *_block(), _stream(1)]))
    data = path.read_bytes().replace(b"Track", b"Tr\xe4ck")
    path.write_bytes(data)
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(path, NAME)
    assert excinfo.value.code == "encoding"


def test_a_resource_is_looked_up_in_the_lines_own_block_only(tmp_path: Path) -> None:
    body = [_summary(revenue="2.00", usages=2), *_block("B1"), _stream(1),
            record("RE01", BlockId="B2", ReleaseReference="R0", DspReleaseId="REL-B2",
                   DisplayArtistName="X", Title="Y"),
            _stream(1, block="B2")]  # fmt: skip
    parsed = PARSER.parse(_write(tmp_path, _file(body, blocks=2)), NAME)
    assert parsed.lines.select("line_no", "isrc", "amount").rows() == [
        (5, "GBAYE2600001", Decimal("1"))
    ]
    assert [(e.row, e.field, e.code) for e in parsed.errors] == [
        (7, "TransactedResource", "unknown_resource")
    ]


def test_string_join_fallback_gives_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the 64-bit pair keys ever collided, the lookup redoes the join on the strings."""
    from connectors.formats import dsr

    expected = _parse_case(FIXTURES / "basic_block", tmp_path)
    # every (block, reference) pair gets the same 64-bit key
    monkeypatch.setattr(dsr, "_pair_key", lambda block, _ref, *_seeds: block.hash(1) * 0 + 7)
    collided = _parse_case(FIXTURES / "basic_block", tmp_path)
    assert_frame_equal(collided.lines, expected.lines)
    assert collided.errors == []


def test_raw_line_fallback_gives_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the line reader and the CSV reader ever to disagree, cells come from the raw lines."""
    from connectors.formats import dsr

    for case in ("basic_block", "comments", "unknown_summary"):
        expected = _parse_case(FIXTURES / case, tmp_path)
        with monkeypatch.context() as patch:
            patch.setattr(dsr, "_aligned", lambda _usage: False)
            again = _parse_case(FIXTURES / case, tmp_path)
        assert_frame_equal(again.lines, expected.lines)
        assert again.errors == expected.errors


def test_duplicate_resource_reference_keeps_the_first(tmp_path: Path) -> None:
    twin = _block()[1].replace("GBAYE2600001", "GBAYE2600099")
    parsed = PARSER.parse(
        _write(tmp_path, _file([_summary(usages=1), *_block(), twin, _stream(1)])), NAME
    )
    assert parsed.lines["isrc"].to_list() == ["GBAYE2600001"]
    assert [(e.row, e.code) for e in parsed.errors] == [(5, "duplicate_reference")]


def test_byte_order_mark_and_empty_file(tmp_path: Path) -> None:
    lines = _file([_summary(usages=1), *_block(), _stream(1)])
    path = tmp_path / NAME
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    parsed = PARSER.parse(path, NAME)
    assert parsed.lines["amount"].to_list() == [Decimal("10")]
    assert parsed.meta.message_id == "MSG-T"
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(FileRejected) as excinfo:
        PARSER.parse(empty, NAME)
    assert excinfo.value.code == "empty_file"


def test_a_file_without_usage_lines_declares_its_revenue(tmp_path: Path) -> None:
    parsed = PARSER.parse(_write(tmp_path, _file([_summary(revenue="5.00")], blocks=0)), NAME)
    assert parsed.lines.height == 0
    assert parsed.lines.schema == pl.Schema(PARSED)
    assert parsed.meta.declared_totals == {"EUR": Decimal("5.00")}  # the gap is visible
    assert parsed.meta.extra["usage_records"] == 0


def test_declared_usages_that_differ_from_the_lines_are_reported(tmp_path: Path) -> None:
    body = [_summary(revenue="3.00", usages=5), *_block(), _stream(1), _stream(2)]
    parsed = PARSER.parse(_write(tmp_path, _file(body)), NAME)
    assert parsed.meta.extra["usage_mismatches"] == [
        {"summary": "S1", "declared": 5, "reported": 3}
    ]
    assert sum(parsed.lines["amount"].to_list()) == Decimal("3.00")  # still the whole revenue


# --------------------------------------------------------------------------------------------
# amounts


def test_allocated_net_revenue_is_the_recipients_share(tmp_path: Path) -> None:
    """SY02 NetRevenue is the service's; AllocatedNetRevenue is what belongs to the recipient."""
    body = [
        _summary(revenue="1000.00", usages=400, AllocatedUsages=4, AllocatedNetRevenue="3.00"),
        *_block(),
        _stream(1),
        _stream(3),
    ]
    parsed = PARSER.parse(_write(tmp_path, _file(body)), NAME)
    assert parsed.lines["amount"].to_list() == [Decimal("0.75"), Decimal("2.25")]
    assert parsed.meta.declared_totals == {"EUR": Decimal("3.00")}
    assert parsed.meta.extra["summaries"][0]["revenue_cell"] == "AllocatedNetRevenue"


def test_returns_make_negative_lines_and_the_sum_still_holds(tmp_path: Path) -> None:
    body = [
        record("SY01.01", SummaryRecordId="S1", CommercialModel="PayAsYouGoModel",
               UseType="PermanentDownload", Territory="DE", Usages=2, CurrencyOfReporting="EUR",
               NetRevenue="1.40"),
        *_block(),
        _download(3, 0),
        _download(0, 1),
    ]  # fmt: skip
    parsed = PARSER.parse(_write(tmp_path, _file(body)), NAME)
    assert parsed.lines.select("quantity", "amount").rows() == [
        (3, Decimal("2.10")),
        (-1, Decimal("-0.70")),
    ]
    assert parsed.lines["commercial_model"].to_list() == ["purchase", "purchase"]


def test_units_that_cancel_out_split_the_revenue_evenly(tmp_path: Path) -> None:
    body = [_summary(revenue="0.03", usages=0), *_block(), _download(2, 0), _download(0, 2),
            _download(1, 1)]  # fmt: skip
    parsed = PARSER.parse(_write(tmp_path, _file(body)), NAME)
    assert parsed.lines["amount"].to_list() == [Decimal("0.01")] * 3
    assert parsed.meta.extra["equal_split_summaries"] == ["S1"]


def test_fractional_decimal_counts_are_rounded_half_even(tmp_path: Path) -> None:
    def sr02(streams: str) -> str:
        return record("SR02", SummaryRecordId="S1", DspResourceId="R", ResourceTitle="T",
                      ResourceDisplayArtistName="A", ResourceType="SoundRecording",
                      ReleaseDisplayArtistName="A", ReleaseTitle="Al", SalesTransactionId="T",
                      IsRoyaltyBearing="true", NumberOfStreams=streams)  # fmt: skip

    lines = [_head(), _summary(revenue="2.6", usages=26), sr02("12.5"), sr02("13.5"), sr02("0")]
    lines.append(record("SRFO", NumberOfLinesInReport=6, NumberOfSummaryRecords=1))
    parsed = PARSER.parse(_write(tmp_path, lines), NAME)
    assert parsed.lines["quantity"].to_list() == [12, 14, 0]
    assert parsed.lines["amount"].to_list() == [Decimal("1.2"), Decimal("1.4"), Decimal("0")]
    assert parsed.meta.extra["fractional_usages"] == 2
    assert parsed.meta.extra["variant"] == "single"


def test_own_revenue_with_more_than_12_decimals_is_refused_never_rounded(tmp_path: Path) -> None:
    """The lake keeps 12 decimal places: a line's own revenue with a nonzero digit beyond them
    is a row error (``amount_too_precise``) naming the cell, not rounded into the lake.
    Trailing zeros beyond the 12th place lose nothing and are read."""
    lines = [
        _head("UgcProfile", "1.2"),
        _summary(revenue="0.4", usages=3, CurrencyOfReporting="USD"),
        *_block()[1:],
        record("SU03.02", BlockId="B1", SalesTransactionId="T1", SummaryRecordId="S1",
               DspResourceId="RES-B1", Usages=1, NetRevenue="0.1000000000005"),
        record("SU03.02", BlockId="B1", SalesTransactionId="T2", SummaryRecordId="S1",
               DspResourceId="RES-B1", Usages=1, NetRevenue="0.1999999999995"),
        record("SU03.02", BlockId="B1", SalesTransactionId="T3", SummaryRecordId="S1",
               DspResourceId="RES-B1", Usages=1, NetRevenue="0.100000000000000"),
    ]  # fmt: skip
    n = len(lines) + 1
    lines.append(record("FOOT", NumberOfLinesInFile=n, NumberOfSummaryRecords=1,
                        NumberOfBlocksInFile=1))  # fmt: skip
    parsed = PARSER.parse(_write(tmp_path, lines), NAME)
    assert parsed.lines["amount"].to_list() == [Decimal("0.1")]
    assert parsed.lines["usage_type"].to_list() == ["ugc"]
    assert [(e.field, e.code) for e in parsed.errors] == [
        ("NetRevenue", "amount_too_precise"),
        ("NetRevenue", "amount_too_precise"),
    ]
    assert "'0.1000000000005' has more than 12 decimal places" in parsed.errors[0].message
    assert "rounded_amounts" not in parsed.meta.extra


def test_ugc_1_1_su03_takes_the_resource_of_its_block(tmp_path: Path) -> None:
    lines = [
        _head("UgcProfile", "1.1"),
        record("SY02.01", SummaryRecordId="S1", CommercialModel="AdvertisementSupportedModel",
               UseType="Stream", Territory="US", ServiceDescription="ContentID", Usages=7,
               Currency="USD", NetRevenue="0.70"),
        record("AS01", BlockId="B1", ResourceReference="A1", DspResourceId="YT1",
               ISRC="USRC12600001", Title="Slow Burn", DisplayArtistName="Aurora Vale",
               Duration="PT3M", ResourceType="SoundRecording"),
        record("SU03.01", BlockId="B1", SalesTransactionId="T1", SummaryRecordId="S1",
               DspReleaseId="VIDEO-1", Usages=7, NetRevenue="0.70"),
        record("SU03.01", BlockId="B9", SalesTransactionId="T2", SummaryRecordId="S1",
               DspReleaseId="VIDEO-2", Usages=1, NetRevenue="0.10"),
    ]  # fmt: skip
    n = len(lines) + 1
    lines.append(record("FOOT", NumberOfLinesInFile=n, NumberOfSummaryRecords=1,
                        NumberOfBlocksInFile=2))  # fmt: skip
    parsed = PARSER.parse(_write(tmp_path, lines), NAME)
    assert parsed.lines.select("isrc", "dsp_release_id", "title", "amount", "currency").rows() == [
        ("USRC12600001", "VIDEO-1", "Slow Burn", Decimal("0.70"), "USD")
    ]
    assert [(e.row, e.field, e.code) for e in parsed.errors] == [(5, "BlockId", "unknown_resource")]
    assert parsed.meta.extra["profile_version"] == "1.1.1"


def test_huge_revenue_takes_the_128_bit_path_and_stays_exact(tmp_path: Path) -> None:
    revenue = "98765432109876.543210987654"  # 10^26 units of 10^-12: beyond Int64
    body = [_summary(revenue=revenue, usages=0), *_block()]
    body += [_stream(s) for s in (999_999_937, 3, 123_456_789)]
    parsed = PARSER.parse(_write(tmp_path, _file(body)), NAME)
    declared = Decimal(revenue)
    assert sum(parsed.lines["amount"].to_list()) == declared
    total = 999_999_937 + 3 + 123_456_789
    for streams, amount in parsed.lines.select("quantity", "amount").iter_rows():
        exact = Fraction(declared) * streams / total
        assert abs(Fraction(amount) - exact) <= Fraction(1, 10**12)


def test_a_summary_with_an_empty_net_revenue_rejects_its_lines(tmp_path: Path) -> None:
    """NetRevenue is mandatory on a summary (minOccurs 1). Empty is not "no money": its
    usage lines are rejected with the summary's error, not ingested at 0.00, while a
    summary that says 0.00 pays its lines nothing."""
    body = [
        _summary("S1", revenue="", usages=10),
        _summary("S2", revenue="0.00", usages=5),
        *_block(),
        _stream(10, sid="S1"),
        _stream(5, sid="S2"),
    ]
    parsed = PARSER.parse(_write(tmp_path, _file(body, summaries=2)), NAME)
    found = [(e.row, e.field, e.code) for e in parsed.errors]
    assert found == [(2, "NetRevenue", "missing_value"), (6, "SummaryRecordId", "invalid_summary")]
    assert parsed.lines["quantity"].to_list() == [5]
    assert parsed.lines["amount"].to_list() == [Decimal(0)]


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    revenue=st.integers(min_value=-(10**20), max_value=10**20),
    units=st.lists(st.integers(min_value=-500, max_value=10**7), min_size=1, max_size=40),
)
def test_allocation_is_exact_and_within_one_unit(revenue: int, units: list[int]) -> None:
    """Random NetRevenue (in 10^-12 units) over random usage counts: the lines sum exactly to
    NetRevenue and none is more than one unit of the last place from its exact share."""
    assume(sum(units) != 0)
    net = Decimal(revenue).scaleb(-12)
    body = [_summary(revenue=f"{net:f}", usages=sum(units)), *_block()]
    body += [_stream(u) for u in units]
    with tempfile.TemporaryDirectory() as tmp:
        parsed = PARSER.parse(_write(Path(tmp), _file(body)), NAME)
    assert not parsed.errors
    amounts = parsed.lines["amount"].to_list()
    assert sum(amounts, Decimal(0)) == net
    total = sum(units)
    for u, amount in zip(units, amounts, strict=True):
        exact = Fraction(revenue, 10**12) * u / total
        assert abs(Fraction(amount) - exact) <= Fraction(1, 10**12)
    assert parsed.lines["quantity"].to_list() == units


# --------------------------------------------------------------------------------------------
# detection


def test_sniff_uses_the_name_and_the_head() -> None:
    head = (FIXTURES / "basic_block" / "input.tsv").read_bytes()[:4096]
    assert PARSER.sniff(NAME, head) == 1.0
    assert PARSER.sniff("report.tsv", head) >= 0.9
    assert 0.5 <= PARSER.sniff(NAME, b"something else\n") < 0.9
    assert PARSER.sniff("sales.csv", b"Start Date\tEnd Date\tUPC\n") == 0.0


def test_the_registry_picks_dsr_from_the_head_alone(tmp_path: Path) -> None:
    assert "dsr" in registry.default_registry()
    assert REGISTRY["dsr"].name == "dsr"
    src = FIXTURES / "single_record" / "input.tsv"
    (parsed,) = registry.parse_file(src, "whatever.tsv", tmp_path)
    assert parsed.meta.format == "dsr"
    assert parsed.meta.extra["variant"] == "single"


def test_iso_period_dates() -> None:
    assert iso_period("2026", end=False) == dt.date(2026, 1, 1)
    assert iso_period("2026", end=True) == dt.date(2026, 12, 31)
    assert iso_period("2024-02", end=True) == dt.date(2024, 2, 29)
    assert iso_period("2026-12", end=True) == dt.date(2026, 12, 31)
    assert iso_period("2026-01-15", end=True) == dt.date(2026, 1, 15)
    with pytest.raises(ValueError):
        iso_period("01/2026", end=False)


# --------------------------------------------------------------------------------------------
# the writer


COMBOS = [
    ("BasicAudioProfile", "1.2", "block"),
    ("BasicAudioProfile", "1.1", "block"),
    ("BasicAudioProfile", "1.2", "single"),
    ("UgcProfile", "1.2", "block"),
    ("UgcProfile", "1.1.1", "block"),
    ("UgcProfile", "1.2", "single"),
]


@pytest.mark.parametrize(("profile", "version", "variant"), COMBOS)
def test_writer_round_trip(profile: Any, version: str, variant: Any, tmp_path: Path) -> None:
    written = write_dsr(
        tmp_path / NAME, lines=3_000, seed=11, profile=profile, version=version, variant=variant
    )
    parsed = PARSER.parse(written.path, written.path.name)
    assert parsed.errors == []
    assert parsed.drift == []
    assert parsed.meta.declared_lines == written.lines == 3_000
    assert parsed.lines.height == written.usage_records == parsed.meta.extra["usage_records"]
    assert parsed.meta.extra["summary_records"] == written.summary_records
    assert parsed.meta.extra["blocks"] == written.blocks
    assert parsed.meta.declared_totals == written.declared_totals
    assert _totals(parsed) == written.declared_totals
    assert parsed.lines["quantity"].sum() == written.usages
    assert (parsed.meta.period_start, parsed.meta.period_end) == (
        written.period_start,
        written.period_end,
    )
    assert parsed.lines["isrc"].null_count() == 0
    assert set(parsed.lines["usage_type"]) <= {"stream", "download", "ugc"}


def test_writer_gzip_output_parses_through_the_registry(tmp_path: Path) -> None:
    name = dsr_filename(recipient="AuroraRecords", sender="Spotify", service="Premium",
                        period="2026-01", territory="multi", gz=True)  # fmt: skip
    written = write_dsr(tmp_path / name, lines=1_000, seed=3)
    (tmp_path / "work").mkdir()
    (parsed,) = registry.parse_file(written.path, name, tmp_path / "work")
    assert parsed.meta.format == "dsr"
    assert parsed.errors == []
    assert _totals(parsed) == written.declared_totals


def test_writer_is_deterministic_and_exact_in_size(tmp_path: Path) -> None:
    a = write_dsr(tmp_path / "a.tsv", lines=777, seed=5)
    b = write_dsr(tmp_path / "b.tsv", lines=777, seed=5)
    c = write_dsr(tmp_path / "c.tsv", lines=777, seed=6)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()
    for n in (25, 26, 27, 500):
        w = write_dsr(tmp_path / f"n{n}.tsv", lines=n, seed=n)
        assert len(w.path.read_bytes().splitlines()) == n
    with pytest.raises(ValueError):
        write_dsr(tmp_path / "tiny.tsv", lines=5, seed=1)


def test_writer_records_are_positioned_by_cell_name() -> None:
    line = record("SU02", BlockId="B7", NumberOfStreams=42)
    cells = line.split("\t")
    assert cells[0] == "SU02" and cells[1] == "B7" and cells[7] == "42" and len(cells) == 10
    assert comment("SU02").startswith("#SU02\tBlockId\tSummaryRecordId")
    with pytest.raises(ValueError):
        record("SU02", Streams=1)
    assert gtin13("060243500001") == "0602435000015"


# --- chunked parsing (parse_batches): the same result as one piece, in bounded memory --------


def _pieces(src: Path, name: str, batch_bytes: int) -> list[ParsedFile]:
    return list(PARSER._batches(src, name, batch_bytes))


def _assert_same_as_whole(src: Path, name: str, batch_bytes: int) -> list[ParsedFile]:
    whole = PARSER.parse(src, name)
    pieces = _pieces(src, name, batch_bytes)
    assert len(pieces) > 1
    assert [p.meta.extra["final"] for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert_frame_equal(pl.concat([p.lines for p in pieces]), whole.lines)
    assert [e for p in pieces for e in p.errors] == whole.errors
    final = pieces[-1].meta
    assert final.declared_totals == whole.meta.declared_totals
    assert {k: v for k, v in final.extra.items() if k != "final"} == whole.meta.extra
    assert pieces[-1].drift == whole.drift
    assert all(p.meta.period_end == whole.meta.period_end for p in pieces)
    return pieces


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_in_small_pieces_is_the_same(case: Path, tmp_path: Path) -> None:
    info = _case(case)
    src = next(case.glob("input.*"))
    name = info["filename"]
    if src.name.endswith(".gz"):
        plain = tmp_path / "plain.tsv"
        plain.write_bytes(gzip.decompress(src.read_bytes()))
        src, name = plain, name.removesuffix(".gz")
    if "rejected" in info:
        with pytest.raises(FileRejected) as excinfo:
            _pieces(src, name, 1)
        assert excinfo.value.code == info["rejected"]["code"]
        return
    _assert_same_as_whole(src, name, 1)  # one usage record a piece


@pytest.mark.parametrize(
    ("profile", "variant"),
    [("BasicAudioProfile", "block"), ("BasicAudioProfile", "single"), ("UgcProfile", "block"),
     ("UgcProfile", "single")],
)  # fmt: skip
def test_generated_reports_in_pieces_are_the_same(
    tmp_path: Path, profile: str, variant: str
) -> None:
    path = tmp_path / NAME
    write_dsr(path, lines=4000, seed=3, profile=profile, variant=variant)  # type: ignore[arg-type]
    pieces = _assert_same_as_whole(path, NAME, 8 << 10)
    # each piece is cut just before a usage record and holds only its own lines
    firsts = [int(p.lines["line_no"].min()) for p in pieces if p.lines.height]  # type: ignore[arg-type]
    assert firsts == sorted(firsts)
    lasts = [int(p.lines["line_no"].max()) for p in pieces if p.lines.height]  # type: ignore[arg-type]
    assert all(a < b for a, b in zip(lasts, firsts[1:], strict=False))


def test_a_foot_mismatch_is_found_before_any_piece(tmp_path: Path) -> None:
    path = tmp_path / NAME
    write_dsr(path, lines=3000, seed=4)
    text = path.read_text().splitlines()
    foot = text[-1].split("\t")
    foot[1] = str(int(foot[1]) + 1)
    path.write_text("\n".join([*text[:-1], "\t".join(foot)]) + "\n")
    pieces = PARSER._batches(path, NAME, 4 << 10)
    with pytest.raises(FileRejected) as excinfo:
        next(pieces)
    assert excinfo.value.code == "foot_mismatch"


def test_a_small_file_is_one_piece(tmp_path: Path) -> None:
    path = tmp_path / NAME
    write_dsr(path, lines=300, seed=5)
    (piece,) = PARSER.parse_batches(path, NAME, batch_bytes=1 << 20)
    assert_frame_equal(piece.lines, PARSER.parse(path, NAME).lines)
