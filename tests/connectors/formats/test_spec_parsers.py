"""Golden-file tests for the declarative format specs, detection and the registry.

Each case is ``tests/fixtures/formats/<format>/<case>/``: ``input.<ext>`` (the file as
delivered), ``case.json`` (its delivered name, the format detection must pick, expected drift,
meta, or the rejection), ``expected.csv`` (the PARSED lines) and ``expected_errors.json``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.formats import registry
from connectors.formats.base import FileRejected, ParsedFile
from connectors.formats.spec import SpecParser, record_chunks
from schemas.format_spec import SpecError, load_spec
from schemas.revenue import PARSED

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"
CASES = sorted(p.parent for p in FIXTURES.glob("*/*/case.json"))
SHIPPED = {
    "amazon",
    "amuse",
    "apple",
    "awal",
    "bandcamp",
    "beatport",
    "believe",
    "cdbaby",
    "deezer",
    "distributor_csv",
    "distributor_noheader",
    "distributor_xlsx",
    "distrokid",
    "fuga",
    "meta",
    "orchard",
    "soundcloud",
    "spotify",
    "symphonic",
    "tidal",
    "tiktok",
    "tunecore",
    "youtube",
}


def _case(path: Path) -> dict[str, Any]:
    return json.loads((path / "case.json").read_text())


def _input(path: Path) -> Path:
    return next(path.glob("input.*"))


def _expected_lines(path: Path) -> pl.DataFrame:
    text = pl.read_csv(path / "expected.csv", infer_schema=False)
    return text.select(
        pl.col(name).str.to_date("%Y-%m-%d") if dtype == pl.Date() else pl.col(name).cast(dtype)
        for name, dtype in PARSED.items()
    )


def _parse(path: Path, tmp_path: Path) -> list[ParsedFile]:
    info = _case(path)
    return registry.parse_file(_input(path), info["filename"], tmp_path, format=info.get("format"))


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path: Path) -> None:
    """Two spare work directories, for tests that parse twice."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()


def test_every_layout_has_golden_cases() -> None:
    assert {p.parent.name for p in CASES} >= SHIPPED


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(case: Path, tmp_path: Path) -> None:
    info = _case(case)
    if "rejected" in info:
        with pytest.raises(FileRejected) as excinfo:
            _parse(case, tmp_path)
        assert excinfo.value.code == info["rejected"]["code"]
        assert info["rejected"]["message_contains"] in excinfo.value.message
        return
    (parsed,) = _parse(case, tmp_path)
    assert parsed.meta.format == info["expect_format"]
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
    # nothing lost: every data line is a parsed line or a row error
    bad_rows = {e.row for e in parsed.errors}
    assert not bad_rows & set(parsed.lines["line_no"].to_list())
    meta = info.get("meta", {})
    if "period_start" in meta:
        assert parsed.meta.period_start == dt.date.fromisoformat(meta["period_start"])
        assert parsed.meta.period_end == dt.date.fromisoformat(meta["period_end"])
    if "declared_lines" in meta:
        assert parsed.meta.declared_lines == meta["declared_lines"]
    if "declared_totals" in meta:
        assert parsed.meta.declared_totals == {
            k: Decimal(v) for k, v in meta["declared_totals"].items()
        }
    if "info_totals" in meta:
        assert parsed.meta.extra["info_totals"] == meta["info_totals"]
    if "totals" in info:
        assert _totals(parsed.lines, info["totals"]) == {
            ccy: Decimal(total) for ccy, total in info["totals"].items()
        }
    if "service" in info:
        services = info["service"] if isinstance(info["service"], list) else [info["service"]]
        assert set(parsed.lines["service"].to_list()) == set(services)


def _totals(lines: pl.DataFrame, stated: dict[str, str]) -> dict[str, Decimal]:
    """The lines' amounts summed per currency (Decimal, never float), at the precision the
    file states its total in: a total of 12.90 is compared with the sum to the cent, no more
    (a DSR share of a summary line carries 12 places; the file's own figure has 2)."""
    sums = lines.group_by("currency").agg(pl.col("amount").sum())
    out: dict[str, Decimal] = {}
    for ccy, total in sums.iter_rows():
        places = Decimal(stated[ccy]) if ccy in stated else Decimal("1")
        out[ccy] = Decimal(total).quantize(places) if ccy in stated else Decimal(total)
    return out


def _raw_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8").split("\n")


def test_raw_hash_is_sha256_of_the_line_as_written(tmp_path: Path) -> None:
    case = FIXTURES / "distributor_csv" / "basic"
    (parsed,) = _parse(case, tmp_path)
    text = _raw_lines(_input(case))
    by_line = dict(zip(parsed.lines["line_no"], parsed.lines["raw_hash"], strict=True))
    # line 6 is a plain line; line 11 is a record whose quoted title spans lines 11-12
    assert by_line[6] == hashlib.sha256(text[5].encode()).hexdigest()
    assert by_line[11] == hashlib.sha256(f"{text[10]}\n{text[11]}".encode()).hexdigest()
    assert 12 not in by_line


def test_raw_hash_does_not_depend_on_the_encoding(tmp_path: Path) -> None:
    case = FIXTURES / "spotify" / "utf16"
    info = _case(case)
    utf8 = tmp_path / "as_utf8.csv"
    utf8.write_bytes(_input(case).read_bytes().decode("utf-16").encode("utf-8"))
    (from_utf16,) = _parse(case, tmp_path / "a")
    (from_utf8,) = registry.parse_file(utf8, info["filename"], tmp_path / "b")
    assert from_utf16.meta.extra["encoding"] == "utf-16-le"
    assert from_utf16.lines["raw_hash"].to_list() == from_utf8.lines["raw_hash"].to_list()
    first = utf8.read_bytes().decode("utf-8").split("\r\n")[1]
    assert from_utf8.lines["raw_hash"][0] == hashlib.sha256(first.encode()).hexdigest()


def test_raw_hash_is_stable_across_runs(tmp_path: Path) -> None:
    case = FIXTURES / "apple" / "basic"
    first = _parse(case, tmp_path / "a")[0].lines["raw_hash"]
    second = _parse(case, tmp_path / "b")[0].lines["raw_hash"]
    assert first.to_list() == second.to_list()
    assert first.n_unique() == first.len()


def test_tiktok_views_are_kept_per_line_not_as_quantity(tmp_path: Path) -> None:
    (parsed,) = _parse(FIXTURES / "tiktok" / "basic", tmp_path)
    info = parsed.meta.extra["info_lines"]
    views = dict(zip(info["line_no"], info["Video Views"], strict=True))
    assert views[2] == 2345678
    assert views[6] is None
    assert parsed.lines.filter(pl.col("line_no") == 2)["quantity"].item() == 1520
    assert set(parsed.lines["usage_type"]) == {"creation"}


def test_skipped_lines_are_counted_not_lost(tmp_path: Path) -> None:
    (parsed,) = _parse(FIXTURES / "distributor_csv" / "basic", tmp_path)
    assert parsed.meta.extra["blank_lines"] == 1
    assert parsed.meta.extra["skipped_lines"] == {"footer": [15]}


# --------------------------------------------------------------------------------------------
# detection


def test_detection_does_not_need_the_file_name(tmp_path: Path) -> None:
    src = _input(FIXTURES / "apple" / "basic")
    (parsed,) = registry.parse_file(src, "download.txt", tmp_path)
    assert parsed.meta.format == "apple"


def test_format_override_skips_detection(tmp_path: Path) -> None:
    src = _input(FIXTURES / "distributor_noheader" / "basic")
    # without a file name hint the headerless layout is still found by its first line ...
    assert registry.parse_file(src, "x.dat", tmp_path)[0].meta.format == "distributor_noheader"
    # ... and --format picks a layout outright
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, "x.dat", tmp_path, format="distributor_csv")
    assert excinfo.value.code == "header_not_found"


def test_unknown_override_lists_known_formats(tmp_path: Path) -> None:
    src = _input(FIXTURES / "apple" / "basic")
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, "a.txt", tmp_path, format="napster")
    assert excinfo.value.code == "unknown_format"
    assert "apple" in excinfo.value.message and "youtube" in excinfo.value.message


def test_unrecognised_file_is_unknown_format(tmp_path: Path) -> None:
    src = tmp_path / "notes.csv"
    src.write_text("when,what\n2026-01-02,lunch\n")
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, "notes.csv", tmp_path)
    assert excinfo.value.code == "unknown_format"
    assert "--format" in excinfo.value.message


def _write_spec(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


MINI = """
    name: {name}
    description: a minimal layout for tests
    fingerprint: [Track, Money]
    columns:
      - {{name: Track, field: isrc}}
      - {{name: Money, field: amount}}
      - {{name: Cur, field: currency}}
"""


def test_two_layouts_claiming_a_file_equally_is_ambiguous(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    _write_spec(specs, "one", MINI.format(name="one"))
    _write_spec(specs, "two", MINI.format(name="two"))
    reg = registry.load_registry(specs)
    src = tmp_path / "f.csv"
    src.write_text("Track,Money,Cur\nGBAYE2600001,1.5,EUR\n")
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, "f.csv", tmp_path, registry=reg)
    assert excinfo.value.code == "unknown_format"
    assert "one" in excinfo.value.message and "two" in excinfo.value.message
    assert registry.parse_file(src, "f.csv", tmp_path, registry=reg, format="two")[0].meta.format


def test_shipped_specs_are_registered_once() -> None:
    reg = registry.default_registry()
    assert set(reg) >= SHIPPED
    assert registry.default_registry() is reg
    assert all(isinstance(reg[name], SpecParser) for name in SHIPPED)


# --------------------------------------------------------------------------------------------
# a finance user's own layout: one YAML file, no code

EURO_STATEMENT = """
    name: nordic_aggregator
    description: >
      A (made-up) Nordic aggregator's monthly statement: semicolon-separated, Windows-1252,
      decimal commas, "Kreditnota" lines are credit notes (negative), period in the file name.
    file_name: '^nordagg_\\d{6}\\.csv$'
    encoding: cp1252
    delimiter: semicolon
    header: 0
    fingerprint: [Kanal, Land, Belopp]
    number_format: {decimal: ",", thousands: "."}
    columns:
      - {name: Typ, required: true, allowed: [Försäljning, Kreditnota]}
      - {name: Kanal, field: service}
      - {name: Land, field: territory, required: true}
      - {name: Låt, field: title}
      - {name: ISRC}
      - {name: Antal, field: quantity}
      - {name: Belopp, field: amount, required: true}
    identifiers: {isrc: ISRC}
    currency: {value: SEK}
    date_rules:
      usage_period: {filename: '_(\\d{6})\\.csv$', format: "%Y%m", span: month}
    sign_rules:
      - when: {column: Typ, equals: Kreditnota}
    constants: {usage_type: stream, gross_net: net}
"""


def test_a_new_layout_is_one_yaml_file(tmp_path: Path) -> None:
    specs = tmp_path / "my_formats"
    _write_spec(specs, "nordic_aggregator", EURO_STATEMENT)
    src = tmp_path / "upload.csv"
    src.write_bytes(
        "Typ;Kanal;Land;Låt;ISRC;Antal;Belopp\r\n"
        "Försäljning;Spotify;SE;Norrsken;SEAAA2600001;1.204;12,04\r\n"
        "Försäljning;Tidal;NO;Polarvind;SEAAA2600002;10;1.234,50\r\n"
        "Kreditnota;Spotify;SE;Norrsken;SEAAA2600001;4;0,04\r\n".encode("cp1252")
    )
    reg = registry.load_registry(specs)
    (parsed,) = registry.parse_file(src, "nordagg_202601.csv", tmp_path, registry=reg)
    assert parsed.meta.format == "nordic_aggregator"
    assert parsed.errors == []
    assert parsed.lines.select("title", "quantity", "amount", "currency").rows() == [
        ("Norrsken", 1204, Decimal("12.04"), "SEK"),
        ("Polarvind", 10, Decimal("1234.5"), "SEK"),
        ("Norrsken", -4, Decimal("-0.04"), "SEK"),
    ]
    assert parsed.meta.period_start == dt.date(2026, 1, 1)
    assert parsed.meta.period_end == dt.date(2026, 1, 31)
    # the shipped layouts can sit underneath a user's directory
    both = registry.load_registry(specs, include_default=True)
    assert {"nordic_aggregator", "apple"} <= set(both)


def test_register_directory_adds_to_a_registry(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    _write_spec(specs, "mini", MINI.format(name="mini"))
    target: dict[str, Any] = {}
    assert registry.register_directory(specs, target) == ["mini"]
    with pytest.raises(SpecError, match="already registered"):
        registry.register_directory(specs, target)


# --------------------------------------------------------------------------------------------
# bad specs say what is wrong


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (MINI.format(name="bad").replace("field: isrc", "field: isrk"), "not a canonical field"),
        (
            MINI.format(name="bad") + "    sign_rules:\n      - when: {column: Type, equals: V}\n",
            "column 'Type' is not declared",
        ),
        (MINI.format(name="bad") + "    constants: {currency: EUR}\n", "more than one source"),
        (MINI.format(name="bad").replace("field: amount", "type: decimal"), "no source for amount"),
        (MINI.format(name="bad") + "    header: none\n", "needs a position for every column"),
        (MINI.format(name="bad") + "    file_name: '([a-z'\n", "not a valid regular expression"),
        (MINI.format(name="bad") + "    delimitr: ';'\n", "delimitr"),
        (
            MINI.format(name="bad").replace(
                "{name: Cur, field: currency}", "{name: Cur, field: currency, type: decimal}"
            ),
            "field currency is of type string",
        ),
    ],
    ids=["field", "undeclared", "two-sources", "no-amount", "positions", "regex", "typo", "type"],
)
def test_bad_spec_is_rejected_with_a_clear_message(tmp_path: Path, body: str, problem: str) -> None:
    path = _write_spec(tmp_path, "bad", body)
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    assert problem in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_spec_name_must_match_its_file(tmp_path: Path) -> None:
    path = _write_spec(tmp_path, "other", MINI.format(name="mini"))
    with pytest.raises(SpecError, match="must match the file name"):
        load_spec(path)


def test_shipped_specs_say_where_their_layout_comes_from() -> None:
    for parser in registry.load_specs():
        assert len(parser.spec.description) > 80, parser.name


# --------------------------------------------------------------------------------------------
# rules that only show on a specific file


def test_period_from_a_file_name_that_does_not_have_one(tmp_path: Path) -> None:
    src = _input(FIXTURES / "spotify" / "basic")
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, "spotify_report.csv", tmp_path, format="spotify")
    assert excinfo.value.code == "filename_mismatch"


def test_gzip_members_are_named_without_the_suffix(tmp_path: Path) -> None:
    case = FIXTURES / "apple" / "gzipped"
    assert gzip.decompress(_input(case).read_bytes()).startswith(b"Start Date\t")
    (parsed,) = _parse(case, tmp_path)
    assert parsed.meta.declared_totals == {"USD": Decimal("20.98")}
    assert parsed.lines["amount"].sum() == Decimal("20.98")


def test_spreadsheet_rows_keep_their_row_numbers(tmp_path: Path) -> None:
    (parsed,) = _parse(FIXTURES / "distributor_xlsx" / "basic", tmp_path)
    assert parsed.lines["line_no"].to_list() == [5, 6, 7, 9]
    assert [e.row for e in parsed.errors] == [10]
    assert parsed.meta.extra["skipped_lines"] == {"footer": [11]}
    assert parsed.lines["upc"][0] == "0602435000015"  # text cells keep leading zeros


def test_batches_cut_only_between_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    basic = _input(FIXTURES / "distributor_csv" / "basic").read_bytes().decode()
    preamble, _, rest = basic.partition("Statement Period,")
    header, _, body = ("Statement Period," + rest).partition("\n")
    data, _, total = body.rpartition("Total,")
    src = tmp_path / "statement_big.csv"
    src.write_text(preamble + header + "\n" + data * 40 + "Total," + total)
    (whole,) = registry.parse_file(src, src.name, tmp_path / "a")
    monkeypatch.setattr("connectors.formats.spec.BATCH_BYTES", 300)  # many tiny batches
    (batched,) = registry.parse_file(src, src.name, tmp_path / "b")
    assert whole.lines.height == 7 * 40
    assert_frame_equal(batched.lines, whole.lines)
    assert batched.errors == whole.errors
    assert batched.meta.extra["skipped_lines"] == whole.meta.extra["skipped_lines"]
    assert batched.meta.extra["blank_lines"] == whole.meta.extra["blank_lines"] == 40
    # the record whose quoted title spans two lines keeps its first line number
    assert src.read_text().split("\n")[10].startswith("2026-01,Sale,YouTube Music")
    assert 11 in batched.lines["line_no"].to_list()
    chunks = list(record_chunks(src, 0, first_line=1, quote='"', size=300))
    assert len(chunks) > 20
    assert all(chunk.count(b'"') % 2 == 0 for chunk, _, _ in chunks)
    assert b"".join(chunk for chunk, _, _ in chunks) == src.read_bytes()
    assert [first for _, first, _ in chunks][:2] == [1, 1 + chunks[0][0].count(b"\n")]


def test_a_stray_quote_does_not_make_batching_quadratic(tmp_path: Path) -> None:
    good = b"2026-01,Sale,Spotify,GB,Stream,Mix,Northern Lights,Aurora Vale,1,2,3,4,5,6,7,GBP\n"
    stray = good.replace(b"Northern Lights", b'Northern 12" Mix')
    src = tmp_path / "stray.csv"
    src.write_bytes(good * 100 + stray + good * 100_000)  # the quote count stays odd after it
    chunks = list(record_chunks(src, 0, first_line=1, quote='"', size=4096))
    assert b"".join(chunk for chunk, _, _ in chunks) == src.read_bytes()
    # no cut is possible after the stray quote: the rest is one batch, found in few steps
    assert len(chunks) <= 4
    assert chunks[-1][2] is True


def test_iter_parse_file_gives_the_same_lines_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = FIXTURES / "apple" / "basic"
    body = _input(case).read_text().split("\n")
    src = tmp_path / "80012345_0126_EU.txt"
    assert body[8] == "Total_Rows\t7"
    trailer = ["Total_Rows\t210", *body[9:]]  # the line count must agree: it is checked
    src.write_text("\n".join([body[0], *body[1:8] * 30, *trailer]))  # 210 lines + trailer
    (whole,) = registry.parse_file(src, src.name, tmp_path / "a")
    monkeypatch.setattr("connectors.formats.spec.BATCH_BYTES", 2000)
    pieces = list(registry.iter_parse_file(src, src.name, tmp_path / "b"))
    assert len(pieces) > 5
    assert [p.meta.extra["final"] for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert_frame_equal(pl.concat([p.lines for p in pieces]), whole.lines)
    final = pieces[-1].meta
    assert final.declared_lines == 210  # the trailer, read at the end ...
    assert final.period_start == whole.meta.period_start == dt.date(2025, 12, 28)
    assert (
        final.extra["skipped_lines"]
        == whole.meta.extra["skipped_lines"]
        == {"footer": [212, 213, 214]}
    )
    assert pieces[0].meta.declared_lines is None  # ... file-level figures only at the end
    # but the fiscal month the file name names is known on every piece
    assert {(p.meta.period_start, p.meta.reporting_period) for p in pieces} == {
        (dt.date(2025, 12, 28), "2026-01")
    }


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ('"1,270.000000"', Decimal("1270")),
        ('"12,345,678.5"', Decimal("12345678.5")),
        ("0.5", Decimal("0.5")),
        ('"1.234,56"', None),  # a comma-decimal amount in a point-decimal layout
        ('"12,34"', None),  # not grouped in threes
        ('"1,2,3"', None),
        ("1e3", None),  # exponents are not how reports write money
        ("2.5E-13", None),
        # beyond Decimal(38, 12): refused with its own reason, never rounded
        ("0.0000000000001", "amount_too_precise"),
        ("-1.2345678901234", "amount_too_precise"),
        ("0.500000000000000", Decimal("0.5")),  # trailing zeros lose nothing
        ("1" + "0" * 25 + ".5", Decimal("1" + "0" * 25 + ".5")),  # 26 digits: the most
        ("1" + "0" * 26, "amount_out_of_range"),
        ('"100,000,000,000,000,000,000,000,000"', "amount_out_of_range"),
    ],
)
def test_amounts_are_read_as_written_or_rejected(
    tmp_path: Path, written: str, read: Decimal | str | None
) -> None:
    basic = _input(FIXTURES / "distributor_csv" / "basic").read_text()
    line = "2026-01,Sale,Spotify,UK,Stream,Northern Lights,Northern Lights,Aurora Vale,"
    line += f"0602435000015,GBAYE2600001,NLR001,15021,60.084000,80,{written},GBP"
    head, _, _ = basic.partition("2026-01,Sale,Spotify")
    src = tmp_path / "statement_amounts_2026-01.csv"
    src.write_text(head + line + "\n")
    (parsed,) = registry.parse_file(src, src.name, tmp_path, format="distributor_csv")
    if read is None or isinstance(read, str):
        assert parsed.lines.height == 0
        assert [(e.row, e.field, e.code) for e in parsed.errors] == [
            (6, "amount", read or "invalid_decimal")
        ]
        assert written.strip('"').replace(",", "") in parsed.errors[0].message.replace(",", "")
    else:
        assert parsed.errors == []
        assert parsed.lines["amount"].to_list() == [read]


@pytest.mark.parametrize("written", ["0025-01", "-2026-01", "3026-01"])
def test_a_date_outside_1900_to_2100_is_a_row_error_not_a_crash(
    tmp_path: Path, written: str
) -> None:
    basic = _input(FIXTURES / "distributor_csv" / "basic").read_text()
    head, _, _ = basic.partition("2026-01,Sale,Spotify")
    good = "Sale,Spotify,UK,Stream,Northern Lights,Northern Lights,Aurora Vale,"
    good += "0602435000015,GBAYE2600001,NLR001,15021,60.084000,80,48.067200,GBP"
    src = tmp_path / "statement_dates_2026-01.csv"
    src.write_text(head + f"{written},{good}\n2026-01,{good}\n")
    (parsed,) = registry.parse_file(src, src.name, tmp_path, format="distributor_csv")
    assert parsed.lines["line_no"].to_list() == [7]
    assert [(e.row, e.code) for e in parsed.errors] == [(6, "invalid_date")]


def test_a_file_whose_line_count_disagrees_with_its_trailer_is_refused(tmp_path: Path) -> None:
    body = _input(FIXTURES / "apple" / "basic").read_text().split("\n")
    src = tmp_path / "80012345_0126_EU.txt"
    src.write_text("\n".join([*body[:7], *body[8:]]))  # one of 7 lines lost on the way
    with pytest.raises(FileRejected) as caught:
        registry.parse_file(src, src.name, tmp_path)
    assert caught.value.code == "control_count_mismatch"
    assert "declares 7 data lines; 6 were read" in caught.value.message


@pytest.mark.parametrize("total", ["NaN", "sNaN", "Infinity"])
def test_a_control_total_that_is_not_a_number_is_refused(tmp_path: Path, total: str) -> None:
    text = _input(FIXTURES / "apple" / "basic").read_text()
    src = tmp_path / "80012345_0126_EU.txt"
    src.write_text(text.replace("Total_Amount\t20.73", f"Total_Amount\t{total}"))
    with pytest.raises(FileRejected) as caught:
        registry.parse_file(src, src.name, tmp_path)
    assert caught.value.code == "invalid_control_total"


def test_a_data_line_after_the_closing_total_is_refused_not_dropped(tmp_path: Path) -> None:
    # a subtotal in the middle of a statement: the lines after it used to vanish as "footer"
    text = _input(FIXTURES / "distributor_csv" / "basic").read_text()
    head, sep, rest = text.partition("2026-01,Sale,Amazon Music")
    src = tmp_path / "statement_sub_2026-01.csv"
    src.write_text(head + 'Total,,,,,,,,,,,,,,"72.763200",GBP\n' + sep + rest)
    with pytest.raises(FileRejected) as caught:
        registry.parse_file(src, src.name, tmp_path)
    assert caught.value.code == "data_after_footer"
    row = head.count("\n") + 2  # the first line after the subtotal
    assert caught.value.row == row and f"line {row}" in caught.value.message


def test_a_stray_quote_is_reported_at_its_line(tmp_path: Path) -> None:
    text = _input(FIXTURES / "distributor_csv" / "basic").read_text()
    src = tmp_path / "statement_q_2026-01.csv"
    src.write_text(text.replace("Polar Drift", 'Polar Drift (12" Mix)'))
    row = text[: text.index("Polar Drift")].count("\n") + 1
    with pytest.raises(FileRejected) as caught:
        registry.parse_file(src, src.name, tmp_path)
    assert caught.value.code == "malformed"
    assert caught.value.row == row
    assert f"line {row} is the first with an unbalanced quote" in caught.value.message


@pytest.mark.parametrize(
    "content", [b"\n\n   \n", b"\xef\xbb\xbf\r\n\t\r\n", "\n \n".encode("utf-16")]
)
def test_a_file_of_blank_lines_is_empty(tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "statement_blank_2026-01.csv"
    src.write_bytes(content)
    with pytest.raises(FileRejected) as caught:
        registry.parse_file(src, src.name, tmp_path)
    assert caught.value.code == "empty_file"


TEXT_CASES = [
    c for c in CASES if _input(c).suffix in (".csv", ".txt", ".tsv") and c.name != "utf16"
]


def _outcome(path: Path, filename: str, workdir: Path) -> Any:
    """What parsing gives, comparable across files: the lines, errors, meta; or the refusal."""
    try:
        parsed = registry.parse_file(path, filename, workdir)
    except FileRejected as exc:
        return ("rejected", exc.code, exc.row, exc.field)
    return [
        (
            p.lines.to_dicts(),
            [e.as_dict() for e in p.errors],
            p.drift,
            (p.meta.format, p.meta.period_start, p.meta.period_end),
            (p.meta.declared_lines, p.meta.declared_totals),
        )
        for p in parsed
    ]


@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("ends", ["cr", "mixed"])
def test_old_mac_and_mixed_line_ends_read_as_the_same_report(
    case: Path, ends: str, tmp_path: Path
) -> None:
    """An old Mac export ends its lines with CR alone; a file edited on several machines mixes
    CR, LF and CRLF. Detection and parsing read both exactly as the LF file: the same lines
    (line numbers and raw hashes included), errors, drift and declared totals."""
    info = _case(case)
    name = info["filename"]
    lf = _input(case).read_bytes().replace(b"\r\n", b"\n")
    rows = lf.split(b"\n")
    if ends == "cr":
        other = b"\r".join(rows)
    else:
        cycle = (b"\r", b"\n", b"\r\n")
        other = b"".join(r + cycle[i % 3] for i, r in enumerate(rows[:-1])) + rows[-1]
    (tmp_path / "lf.txt").write_bytes(lf)
    (tmp_path / "other.txt").write_bytes(other)
    expected = _outcome(tmp_path / "lf.txt", name, tmp_path / "a")
    assert _outcome(tmp_path / "other.txt", name, tmp_path / "b") == expected
