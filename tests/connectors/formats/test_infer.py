"""``formats infer``: a draft spec from a sample, by name and content, that parses the sample
with the right totals and no hand edit; and the command with its dry run (nothing written)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from connectors.formats.infer import infer_bytes, spec_name
from connectors.formats.registry import detect, load_registry
from pipelines.ingest.dry_run import dry_run
from schemas.format_spec import load_spec

# A distributor CSV: preamble (currency named there), ";" with decimal commas and "." thousands,
# ISO alpha-3 territories with N/A and the legacy ROM, months written "June 2025".
PREAMBLE_SEMICOLON = (
    b"Distributor Statement\nAccount: Example Label\nCurrency: EUR\n\n"
    b"Sales Month;Store;Country;Track Title;Artist;ISRC;UPC;Units;Net Revenue\n"
    b"June 2025;Spotify;USA;Night Drive;The Examples;USAAA2500001;5012345678900;1.204;12,04\n"
    b"June 2025;Apple Music;GBR;Night Drive;The Examples;USAAA2500001;5012345678900;300;3,50\n"
    b"June 2025;Deezer;N/A;Daybreak;The Examples;USAAA2500002;5012345678900;10;0,10\n"
    b"June 2025;Spotify;ROM;Daybreak;The Examples;USAAA2500002;5012345678900;7;0,07\n"
)
# Bandcamp-like: UTF-16 with BOM, tabs, CRLF, US dates, a currency column, a refund.
UTF16_TAB = (
    "\r\n".join(
        [
            "date\titem type\titem name\tartist\tisrc\tupc\tcurrency\tquantity\tnet amount"
            "\tbuyer country\ttransaction type",
            "6/3/2025\ttrack\tNight Drive\tThe Examples\tUSAAA2500001\t5012345678900\tUSD\t1"
            "\t0.85\tUnited States\tSale",
            "6/14/2025\talbum\tNight Drive EP\tThe Examples\t\t5012345678900\tUSD\t2\t13.60"
            "\tGermany\tSale",
            "6/20/2025\ttrack\tDaybreak\tThe Examples\tUSAAA2500002\t5012345678900\tGBP\t1"
            "\t0.80\tUnited Kingdom\tsale",
            "6/28/2025\ttrack\tNight Drive\tThe Examples\tUSAAA2500001\t5012345678900\tUSD\t1"
            "\t0.85\tUnited States\tRefund",
        ]
    )
    + "\r\n"
).encode("utf-16")
# Comma CSV closed by a total line (its amount becomes a control total), quoted thousands,
# start and end dates, the currency only in a header ("Royalty (GBP)").
FOOTER_TOTAL = (
    b"Start Date,End Date,Platform,Territory,ISRC,Song Title,Streams,Royalty (GBP)\n"
    b'2025-06-01,2025-06-30,Spotify,GB,GBAAA2500001,Rainfall,"1,500",4.50\n'
    b'2025-06-01,2025-06-30,YouTube,US,GBAAA2500001,Rainfall,"12,000",7.25\n'
    b"2025-06-01,2025-06-30,Spotify,FR,GBAAA2500002,Undertow,300,0.90\n"
    b"2025-06-01,2025-06-30,TikTok,BR,GBAAA2500002,Undertow,40,0.0125\n"
    b'Total,,,,,,"13,840",12.6625\n'
)
# Windows-1252, "|", French headers, day-first dates, space thousands, a closing line.
CP1252_PIPE = (
    "\r\n".join(
        [
            "Période|Plateforme|Pays|Titre|Artiste|ISRC|Quantité|Montant|Devise",
            "30/06/2025|Deezer|France|Été|Les Exemples|FRAAA2500001|1 204|12,04|EUR",
            "30/06/2025|Qobuz|Belgium|Été|Les Exemples|FRAAA2500001|12|0,30|EUR",
            "30/06/2025|Deezer|Germany|Hiver|Les Exemples|FRAAA2500002|5|0,05|EUR",
            "Generated 2025-07-02",
        ]
    )
    + "\r\n"
).encode("cp1252")

# Quoted comma CSV after a report line, "Grand Total", a negative amount in parentheses,
# no date column: the month is in the file name.
QUOTED_PARENS = (
    b"Report generated 2025-07-01\n\n"
    b'"Store","Country","Product","ISRC","Qty","Earnings (USD)"\n'
    b'"Spotify","US","My Song, Pt. 1","USAAA2500001","1,204","12.04"\n'
    b'"Apple","CA","My Song, Pt. 1","USAAA2500001","-3","(0.50)"\n'
    b'"Grand Total","","","","1,201","11.54"\n'
)

CASES = {
    # filename, bytes, {currency: total}, lines, what the spec must say
    "preamble_semicolon": (
        "label_statement_202506.csv",
        PREAMBLE_SEMICOLON,
        {"EUR": "15.71"},
        4,
        ["header: auto", "decimal: ','", "usage_period: {column: Sales Month, format: [month]"],
    ),
    "utf16_tab": (
        "bandcamp_sales.csv",
        UTF16_TAB,
        {"USD": "13.60", "GBP": "0.80"},
        4,
        ["delimiter: tab", "currency: {column: currency}", "in: [Refund]", "format: [us]"],
    ),
    "footer_total": (
        "agg_2025-06.csv",
        FOOTER_TOTAL,
        {"GBP": "12.6625"},
        4,
        ["footer: {pattern:", "control_totals:", "currency: {value: GBP}", "thousands: ','"],
    ),
    "quoted_parens": (
        "dk_2025_06.csv",
        QUOTED_PARENS,
        {"USD": "11.54"},
        2,
        ["parentheses_negative: true", '"%Y_%m"', "Grand", "currency: {value: USD}"],
    ),
    "cp1252_pipe": (
        "releve_juin.txt",
        CP1252_PIPE,
        {"EUR": "12.39"},
        3,
        ["encoding: cp1252", "delimiter: pipe", "footer: {lines: 1}", "thousands: ' '"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_inferred_spec_reads_the_sample_with_its_totals(case: str, tmp_path: Path) -> None:
    filename, data, totals, n_lines, says = CASES[case]
    sample = tmp_path / filename
    sample.write_bytes(data)
    name = spec_name(Path(filename).stem)
    inferred = infer_bytes(data, filename, name=name)
    for text in says:
        assert text.replace("'", '"') in inferred.yaml_text or text in inferred.yaml_text, text
    # every column carries its guess and confidence
    assert inferred.yaml_text.count("  - {name:") == inferred.yaml_text.count("%)")
    spec_path = tmp_path / "specs" / f"{name}.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(inferred.yaml_text)
    spec = load_spec(spec_path)  # the project's loader takes it as written
    # detection picks it among the shipped formats (infer -> add -> ingest, no --format)
    reg = load_registry(spec_path.parent, include_default=True)
    assert detect(filename, sample.read_bytes()[:65536], path=sample, registry=reg).name == name

    result = dry_run(spec, sample, filename)
    assert result["status"] == "would_ingest", result
    assert (result["lines"], result["accepted"], result["rejected"]) == (n_lines, n_lines, 0)
    got = {cur: Decimal(t["accepted"]) for cur, t in result["totals"].items()}
    assert got == {cur: Decimal(v) for cur, v in totals.items()}
    assert not result["drift"]
    if case == "footer_total":  # the total line is checked, not read as a line
        assert result["totals"]["GBP"]["declared"] == "12.6625"
    if case == "preamble_semicolon":  # N/A is the unknown territory, kept with a warning
        assert result["warning_reasons"] == [
            {"field": "territory", "code": "territory_not_given", "lines": 1}
        ]


def test_content_alone_and_a_contradicting_name() -> None:
    """Columns named nothing telling are recognised by their values; a column named like an
    amount whose values are words is not taken for one; an unnamed column is left out."""
    data = (
        b"a,b,c,d,e,Revenue,\n"
        b"GBAAA2500001,DE,2025-06,17,1.25,n/a,\n"
        b"GBAAA2500002,FR,2025-06,3,0.40,n/a,\n"
    )
    inferred = infer_bytes(data, "x.csv", name="x", currency="EUR")
    fields = {g.name: g.field for g in inferred.columns}
    fields.pop("")  # a trailing delimiter: an unnamed column, left out of the spec
    assert "column 7: unnamed, left out" in inferred.notes
    assert fields == {
        "a": "isrc",
        "b": "territory",
        "c": "usage_period",
        "d": "quantity",
        "e": "amount",
        "Revenue": None,
    }
    assert "currency: {value: EUR}" in inferred.yaml_text


def test_formats_infer_command_writes_the_spec_and_dry_runs(tmp_path: Path) -> None:
    sample = tmp_path / "agg_2025-06.csv"
    sample.write_bytes(FOOTER_TOTAL.replace(b'"13,840",12.6625', b'"13,840",99.00'))
    out = tmp_path / "new_aggregator.yaml"
    r = CliRunner().invoke(app, ["formats", "infer", str(sample), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert load_spec(out).name == "new_aggregator"
    assert "would give 4 lines: 4 accepted" in r.output
    assert "do NOT sum to the file's declared total" in r.output  # 99.00 declared
    r = CliRunner().invoke(app, ["formats", "infer", str(sample), "--json"])
    doc = json.loads(r.output)
    assert doc["spec"] is None and doc["spec_yaml"].startswith("# Draft spec")
    assert doc["dry_run"]["status"] == "would_quarantine"
    assert doc["dry_run"]["control_total_mismatch"] == ["GBP"]
    assert doc["inference"]["footer_lines"] == 1
    bad = CliRunner().invoke(
        app, ["formats", "infer", str(sample), "--out", str(tmp_path / "X-1.yaml")]
    )
    assert bad.exit_code == 2
    again = CliRunner().invoke(app, ["formats", "infer", str(sample), "--out", str(out)])
    assert again.exit_code == 2  # a reviewed spec is not overwritten without --force
