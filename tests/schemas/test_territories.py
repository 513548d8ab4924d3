from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.territories import (
    ALL_TERRITORIES,
    REPORTED_TERRITORIES,
    UNKNOWN,
    WORLDWIDE,
    TerritoryError,
    TerritorySet,
    is_valid_currency,
    is_valid_territory,
    normalise_territories,
    normalise_territory,
    normalise_territory_expr,
    parse_territory_set,
    require_currency,
    require_territory,
    territory_reading,
)


def test_all_territories() -> None:
    assert {"GB", "US", "XK", "JP", "AQ"} <= ALL_TERRITORIES
    assert "WW" not in ALL_TERRITORIES
    assert "UK" not in ALL_TERRITORIES
    assert len(ALL_TERRITORIES) == 250  # 249 ISO 3166-1 + XK
    assert all(len(c) == 2 and c.isupper() for c in ALL_TERRITORIES)


@pytest.mark.parametrize("code", ["GB", "US", "XK", "WW", "gb", " ie "])
def test_territory_valid(code: str) -> None:
    assert is_valid_territory(code)
    assert require_territory(code) == code.strip().upper()


@pytest.mark.parametrize("code", ["UK", "ZZ", "EU", "GBR", "G1", "", None, 44])
def test_territory_invalid(code: object) -> None:
    assert not is_valid_territory(code)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        require_territory(code)  # type: ignore[arg-type]


def test_uk_reason_points_to_gb() -> None:
    with pytest.raises(TerritoryError) as info:
        require_territory("uk")
    assert info.value.token == "UK"
    assert "use GB" in info.value.reason


@pytest.mark.parametrize("code", ["EUR", "usd", " GBP ", "JPY", "XOF", "XAF", "XCD", "XPF"])
def test_currency_valid(code: str) -> None:
    assert is_valid_currency(code)
    assert require_currency(code) == code.strip().upper()


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU", "XDR", "EURO", "EU", "", None, "ABC", "HRK"])
def test_currency_invalid(code: object) -> None:
    assert not is_valid_currency(code)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        require_currency(code)  # type: ignore[arg-type]


def test_currency_reasons() -> None:
    with pytest.raises(ValueError, match="non-currency/test"):
        require_currency("xxx")
    with pytest.raises(ValueError, match="3-letter"):
        require_currency("EURO")
    with pytest.raises(ValueError, match="not an active ISO 4217"):
        require_currency("HRK")  # kuna, replaced by EUR in 2023


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("WW", "WW"),
        ("ww", "WW"),
        ("IE, gb", "GB,IE"),
        ("GB,GB,IE,", "GB,IE"),
        ("WW,-US,-CA", "WW,-CA,-US"),
        ("-US,WW,-us", "WW,-US"),
        ("WW,GB", "WW"),
        (["GB", "ie"], "GB,IE"),
        (["WW", "-US"], "WW,-US"),
        ('["WW", "-us", "-CA"]', "WW,-CA,-US"),
    ],
)
def test_parse_canonical(value: str | list[str], canonical: str) -> None:
    ts = parse_territory_set(value)
    assert ts.to_string() == canonical
    assert ts.to_list() == canonical.split(",")
    assert parse_territory_set(ts.to_string()) == ts


def test_parse_fields() -> None:
    ts = parse_territory_set("WW,-US,-CA")
    assert ts.include == ("WW",)
    assert ts.exclude == ("CA", "US")
    assert parse_territory_set("WW") == WORLDWIDE
    assert TerritorySet(("ie", "GB")) == parse_territory_set("GB,IE")


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("GB,UK", "UK"),
        ("ZZ", "ZZ"),
        ("WW,-ZZ", "ZZ"),
        ("GB,-US", "-US"),
        ("-US", "-US"),
        ("WW,-WW", "-WW"),
        ("WW,GB,-GB", "GB"),
        ("", ""),
        (" , ", ""),
        ("[not json", "[not json"),
        ('{"WW": 1}', '{"WW": 1}'),
    ],
)
def test_parse_errors(value: str, token: str) -> None:
    with pytest.raises(TerritoryError) as info:
        parse_territory_set(value)
    assert info.value.token == token
    assert info.value.reason


def test_resolve() -> None:
    assert WORLDWIDE.resolve() == ALL_TERRITORIES
    ex = parse_territory_set("WW,-US,-CA").resolve()
    assert ex == ALL_TERRITORIES - {"US", "CA"}
    assert parse_territory_set("GB,IE").resolve() == {"GB", "IE"}


def test_contains() -> None:
    ts = parse_territory_set("WW,-US")
    assert ts.contains("GB") and ts.contains("gb") and ts.contains("XK")
    assert not ts.contains("US")
    assert not ts.contains("ZZ")
    assert not ts.contains("WW")
    assert WORLDWIDE.contains("WW")
    assert parse_territory_set("GB,IE").contains("IE")
    assert not parse_territory_set("GB,IE").contains("FR")


def test_intersects() -> None:
    assert parse_territory_set("GB,IE").intersects(parse_territory_set("WW,-GB"))
    assert not parse_territory_set("GB").intersects(parse_territory_set("WW,-GB"))
    assert not parse_territory_set("US").intersects(parse_territory_set("CA"))
    assert WORLDWIDE.intersects(parse_territory_set("JP"))


def test_frozen_and_hashable() -> None:
    ts = parse_territory_set("GB,IE")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ts.include = ("FR",)  # type: ignore[misc]
    assert len({ts, parse_territory_set("IE,GB")}) == 1


@given(
    st.sets(st.sampled_from(sorted(ALL_TERRITORIES)), min_size=1, max_size=8),
    st.booleans(),
)
def test_roundtrip_property(codes: set[str], worldwide: bool) -> None:
    ts = TerritorySet(("WW",), tuple(codes)) if worldwide else TerritorySet(tuple(codes))
    assert parse_territory_set(ts.to_string()) == ts
    assert parse_territory_set(ts.to_list()) == ts
    resolved = ts.resolve()
    assert resolved.isdisjoint(codes) if worldwide else resolved == codes
    assert all(ts.contains(c) for c in resolved)


def test_unknown_territory_is_matched_by_the_world_alone() -> None:
    """A line whose territory nobody could place (ZZ) is covered by a worldwide set without
    exclusions, exactly as a WW line is: a rate "for the world" still applies to it."""
    assert WORLDWIDE.contains(UNKNOWN) and WORLDWIDE.contains("zz")
    assert not parse_territory_set("WW,-US").contains(UNKNOWN)  # it may be the excluded US
    assert not parse_territory_set("GB,IE").contains(UNKNOWN)
    assert ALL_TERRITORIES | {"WW", "ZZ"} == REPORTED_TERRITORIES


# a report's text -> (code, finding)
READINGS = [
    # ISO alpha-2, alpha-3 and numeric codes, any case, numeric without its zeros
    ("GB", "GB", None),
    (" gb ", "GB", None),
    ("USA", "US", None),
    ("GBR", "GB", None),
    ("deu", "DE", None),
    ("826", "GB", None),
    ("036", "AU", None),
    ("36", "AU", None),
    ("NA", "NA", None),  # Namibia, not "n/a"
    # English names: ISO's (pycountry), CLDR's (babel), without accents, curly apostrophes
    ("United Kingdom", "GB", None),
    ("united states of america", "US", None),
    ("South Korea", "KR", None),
    ("Korea, Republic of", "KR", None),
    ("Russia", "RU", None),
    ("Viet Nam", "VN", None),
    ("Vietnam", "VN", None),
    ("Côte d’Ivoire", "CI", None),
    ("Cote d'Ivoire", "CI", None),
    ("Türkiye", "TR", None),
    ("Hong Kong SAR China", "HK", None),
    ("Kosovo", "XK", None),
    # the aliases stores use
    ("UK", "GB", None),
    ("EL", "GR", None),
    ("ROM", "RO", None),
    ("XKX", "XK", None),
    ("England", "GB", None),
    ("Turkey", "TR", None),
    ("Czech Republic", "CZ", None),
    ("Worldwide", "WW", None),
    ("WW", "WW", None),
    ("World", "WW", None),
    ("Rest of World", "WW", None),
    # not given: unknown, with a finding
    ("N/A", "ZZ", "not_given"),
    ("", "ZZ", "not_given"),
    ("   ", "ZZ", "not_given"),
    (None, "ZZ", "not_given"),
    ("-", "ZZ", "not_given"),
    ("Unknown", "ZZ", "not_given"),
    ("ZZ", "ZZ", "not_given"),
    # nobody can place it: unknown too, with a finding (never a refused line)
    ("Narnia", "ZZ", "unrecognised"),
    ("EU", "ZZ", "unrecognised"),
    ("G1", "ZZ", "unrecognised"),
]


@pytest.mark.parametrize(("text", "code", "finding"), READINGS)
def test_territories_as_reports_write_them(
    text: str | None, code: str, finding: str | None
) -> None:
    assert territory_reading(text) == (code, finding)
    assert normalise_territory(text) == code


def test_the_polars_twin_reads_every_territory_the_same() -> None:
    texts = [t for t, _, _ in READINGS]
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    assert frame.select(normalise_territory_expr("t"))["t"].to_list() == [
        normalise_territory(t) for t in texts
    ]


@given(st.text(max_size=12))
def test_the_twins_agree_on_any_text(text: str) -> None:
    frame = pl.DataFrame({"t": [text]}, schema={"t": pl.String})
    assert frame.select(normalise_territory_expr("t")).item() == normalise_territory(text)


def test_lines_keep_their_amount_and_get_a_finding() -> None:
    lines = pl.DataFrame(
        {"line_no": [2, 3, 4, 5], "territory": ["GBR", "N/A", None, "Narnia"]},
        schema={"line_no": pl.Int64, "territory": pl.String},
    )
    out, found = normalise_territories(lines)
    assert out["territory"].to_list() == ["GB", "ZZ", "ZZ", "ZZ"]
    assert found.select("line_no", "field", "code").rows() == [
        (3, "territory", "territory_not_given"),
        (4, "territory", "territory_not_given"),
        (5, "territory", "unknown_territory"),
    ]
    assert "'N/A'" in found["message"][0] and "'Narnia'" in found["message"][2]
    _, none = normalise_territories(lines.head(1))
    assert none.is_empty()
