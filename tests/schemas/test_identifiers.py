from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum import ean
from stdnum import isrc as stdnum_isrc
from stdnum.iso7064 import mod_37_36

from schemas import identifiers
from schemas.identifiers import (
    KINDS,
    IdentifierError,
    dpid_check_ok,
    gtin_forms,
    gtin_key,
    gtin_key_expr,
    is_valid_dpid,
    is_valid_grid,
    is_valid_gtin,
    is_valid_gtin_expr,
    is_valid_ipi,
    is_valid_isni,
    is_valid_isrc,
    is_valid_iswc,
    normalise,
    normalise_gtin,
    normalise_ipi,
    normalise_isni,
    normalise_iswc,
    require,
)
from tests.conftest import examples

SAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "ddex" / "ern-4.3" / "samples"
SAMPLE_DPIDS = ["PADPIDA2007050901U", "PADPIDA2009101501Y", "PADPIDA2013042401U"]
VALIDATORS = [
    is_valid_isrc,
    is_valid_gtin,
    is_valid_iswc,
    is_valid_grid,
    is_valid_isni,
    is_valid_dpid,
    is_valid_ipi,
]


def gs1_check(body: str) -> str:
    """Independent GS1 mod-10 oracle: weights 3,1,3,1... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str(-total % 10)


def test_normalise() -> None:
    assert normalise("  us-rc1.76 07839\t") == "USRC17607839"
    assert normalise_iswc("T-034.524.680-1") == "T0345246801"
    assert normalise_isni("0000 0001 2103 2683") == "0000000121032683"
    assert normalise_gtin(" 0360-0029 1452 ") == "036000291452"
    assert normalise_gtin("36000291452.0") == "36000291452.0"  # dot kept: float artefact


@pytest.mark.parametrize("validator", VALIDATORS)
@pytest.mark.parametrize("bad", [None, "", "   ", 12345, b"USRC17607839"])
def test_validators_never_raise_on_junk(validator: object, bad: object) -> None:
    assert validator(bad) is False  # type: ignore[operator]


@pytest.mark.parametrize(
    "value",
    [
        "USRC17607839",
        "GBAYC1700598",
        "JPTO09332830",
        "us-rc1-76-07839",
        "US RC1 76 07839",
        "QZA1B2300001",
    ],
)
def test_isrc_valid(value: str) -> None:
    assert is_valid_isrc(value)


def test_isrc_accepts_any_two_letter_prefix_unlike_stdnum() -> None:
    assert not stdnum_isrc.is_valid("AAABC2312345")  # not in stdnum's country list
    assert is_valid_isrc("AAABC2312345")


@pytest.mark.parametrize(
    "value",
    [
        "USRC1760783",
        "USRC176078399",
        "ZZZ",
        "1SRC17607839",
        "USRC1A607839",
        "USRC1760783X",
        "US_C17607839",
        "ÜSRC17607839",
    ],
)
def test_isrc_invalid(value: str) -> None:
    assert not is_valid_isrc(value)


@pytest.mark.parametrize(
    "value",
    [
        "036000291452",
        "4006381333931",
        "96385074",
        "00094631432057",
        "04988006110809",
        "190295810726",
        "0 36000 29145 2",
    ],
)
def test_gtin_valid(value: str) -> None:
    assert is_valid_gtin(value)


@pytest.mark.parametrize(
    "value",
    [
        "036000291453",  # wrong check digit
        "4006381333932",
        "96385075",
        "36000291452",  # 11 digits: leading zero lost
        "36000291452.0",  # spreadsheet float
        "3.6000291452E+11",
        "03600029145X",
        "0360002914520000",
        "000000000000",
        "00000000",
        "0000000000000",
        "00000000000000",
    ],
)
def test_gtin_invalid(value: str) -> None:
    assert not is_valid_gtin(value)


def test_gtin_keeps_leading_zeros() -> None:
    assert require("gtin", "00094631432057") == "00094631432057"
    assert require("gtin", "036000291452") == "036000291452"


@given(st.text(alphabet="0123456789", min_size=11, max_size=11), st.integers(1, 9))
def test_gtin_property_check_digit(body: str, delta: int) -> None:
    assume(body.strip("0"))  # all zeros is the rejected placeholder
    check = gs1_check(body)
    assert is_valid_gtin(body + check)
    assert not is_valid_gtin(body + str((int(check) + delta) % 10))


@settings(max_examples=examples(200))
@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_vectorised_gtin_check_agrees_with_stdnum(body: str) -> None:
    good = body + ean.calc_check_digit(body)
    bad = body + str((int(good[-1]) + 1) % 10)
    got = pl.DataFrame({"upc": [good, bad]}).select(is_valid_gtin_expr("upc"))["upc"].to_list()
    assert got == [is_valid_gtin(good), is_valid_gtin(bad)]


@pytest.mark.parametrize(
    "value", ["T-034.524.680-1", "T0345246801", "t-034.524.680-1", "T 034 524 680 1"]
)
def test_iswc_valid(value: str) -> None:
    assert is_valid_iswc(value)


@pytest.mark.parametrize(
    "value",
    ["T-034.524.680-2", "0345246801", "T034524680", "T03452468011", "TA345246801"],
)
def test_iswc_invalid(value: str) -> None:
    assert not is_valid_iswc(value)


@pytest.mark.parametrize(
    "value",
    [
        "A1-2425G-ABC1234002-M",
        "A12425GABC1234002M",
        "a1-2425g-abc1234002-m",
        "A10302B0003989564F",
        "GRid:A1-2425G-ABC1234002-M",
    ],
)
def test_grid_valid(value: str) -> None:
    assert is_valid_grid(value)


def test_grid_invalid() -> None:
    assert not is_valid_grid("A1-2425G-ABC1234002-N")
    assert not is_valid_grid("A1-2425G-ABC1234002")
    body = "B12425GABC1234002"  # correct Mod 37,36 but not the A1 scheme
    assert mod_37_36.is_valid(body + mod_37_36.calc_check_digit(body))
    assert not is_valid_grid(body + mod_37_36.calc_check_digit(body))


@pytest.mark.parametrize(
    "value",
    [
        "0000000121032683",
        "0000 0001 2103 2683",
        "000000012281955X",
        "0000-0001-2281-955x",
    ],
)
def test_isni_valid(value: str) -> None:
    assert is_valid_isni(value)


@pytest.mark.parametrize(
    "value",
    ["0000000121032684", "000000012103268", "X000000121032683", "00000001228195X5"],
)
def test_isni_invalid(value: str) -> None:
    assert not is_valid_isni(value)


@pytest.mark.parametrize("value", SAMPLE_DPIDS)
def test_sample_dpids_valid_and_check_covers_prefix(value: str) -> None:
    assert is_valid_dpid(value)
    assert dpid_check_ok(value)
    assert dpid_check_ok(value.lower()[:7] + "-" + value[7:])
    # The check spans all 18 characters: it fails once the PADPIDA prefix is dropped.
    assert not mod_37_36.is_valid(value[7:])


def test_dpids_in_ddex_samples_pass_check() -> None:
    assert SAMPLES.is_dir(), "the official ERN 4.3 samples are part of the repository"
    found = {
        m for f in SAMPLES.glob("*.xml") for m in re.findall(r"PADPIDA[A-Z0-9]+", f.read_text())
    }
    assert found >= set(SAMPLE_DPIDS)
    assert all(dpid_check_ok(d) for d in found)


def test_dpid_check_mismatch_is_only_a_warning() -> None:
    bad = "PADPIDA2013042401V"
    assert is_valid_dpid(bad)
    assert not dpid_check_ok(bad)
    assert require("dpid", bad) == bad


@pytest.mark.parametrize(
    "value",
    [
        "PADPIDB2013042401U",
        "PADPIDA2013042401",
        "PADPIDA2013042401UU",
        "PADPIDA20130424_1U",
    ],
)
def test_dpid_invalid(value: str) -> None:
    assert not is_valid_dpid(value)
    assert not dpid_check_ok(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00052210040", "00052210040"),
        ("123456789", "00123456789"),
        ("1234567890", "01234567890"),
        ("I-000000229-7", "I0000002297"),
    ],
)
def test_ipi_valid(value: str, expected: str) -> None:
    assert is_valid_ipi(value)
    assert normalise_ipi(value) == expected == require("ipi", value)


@pytest.mark.parametrize(
    "value",
    [
        "12345678",
        "123456789012",
        "00000000000",
        "I-00000229-7",
        "I-000000229",
        "1234S678901",
    ],
)
def test_ipi_invalid(value: str) -> None:
    assert not is_valid_ipi(value)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("gtin", "036000291453", "GTIN check digit should be 2, got 3"),
        ("gtin", "000000000000", "GTIN is an all-zero placeholder"),
        ("gtin", "36000291452", "GTIN must be 8, 12, 13 or 14 digits, got 11"),
        ("isrc", "USRC1760783", "ISRC must be 12 characters, got 11"),
        ("isrc", "", "ISRC is empty"),
        ("isrc", None, "ISRC is missing"),
        ("iswc", "T-034.524.680-2", "ISWC check character should be 1, got 2"),
        ("grid", "A1-2425G-ABC1234002-N", "GRid check character should be M, got N"),
        ("isni", "0000000121032684", "ISNI check character should be 3, got 4"),
        ("dpid", "PADPIDA201304240", "DPID must be 18 characters, got 16"),
        ("ipi", "12345678", "IPI name number must be 9-11 digits, got 8"),
    ],
)
def test_require_reasons(kind: str, value: str | None, reason: str) -> None:
    with pytest.raises(IdentifierError) as info:
        require(kind, value)
    assert info.value.reason == reason
    assert info.value.kind == kind
    assert info.value.value == value
    assert isinstance(info.value, ValueError)


def test_require_returns_normalised() -> None:
    assert require("isrc", " us-rc1-76-07839 ") == "USRC17607839"
    assert require("iswc", "T-034.524.680-1") == "T0345246801"
    assert require("isni", "0000 0001 2281 955x") == "000000012281955X"
    assert require("grid", "GRid:A1-2425G-ABC1234002-M") == "A12425GABC1234002M"
    assert set(KINDS) == {"isrc", "gtin", "iswc", "grid", "isni", "dpid", "ipi"}


def test_require_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown identifier kind") as info:
        require("upc", "036000291452")
    assert not isinstance(info.value, IdentifierError)


# --- the Polars twins agree with the Python functions ---------------------------------------

# separators and look-alikes a report may contain: Unicode dashes and spaces (including the
# information separators U+001C..U+001F, where Python's and Rust's ``\s`` differ), dots,
# lower case, fullwidth and other non-ASCII letters and digits, "ß" (upper-cases to "SS")
AWKWARD = list(
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u202f\u205f\u3000"
    "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d._:/"
    "abcxyzßﬁıİǅ\uff21\uff41\uff10\uff19\u0663ÜT"
)
VALID = {
    "isrc": ["USRC17607839", "GBAYC1700598", "QZA1B2300001"],
    "gtin": ["036000291452", "4006381333931", "96385074", "00094631432057"],
    "iswc": ["T0345246801"],
    "grid": ["A12425GABC1234002M", "A10302B0003989564F", "GRid:A12425GABC1234002M"],
    "isni": ["0000000121032683", "000000012281955X"],
    "dpid": SAMPLE_DPIDS,
    "ipi": ["00052210040", "123456789", "1234567890", "I0000002297"],
}
TWINS = {
    kind: (
        getattr(identifiers, f"normalise_{kind}"),
        getattr(identifiers, f"normalise_{kind}_expr"),
        getattr(identifiers, f"is_valid_{kind}"),
        getattr(identifiers, f"is_valid_{kind}_expr"),
    )
    for kind in KINDS
}


@st.composite
def _near_valid(draw: st.DrawFn) -> str:
    """A valid identifier of some kind, then edited: separators put in, cases changed,
    characters swapped for awkward ones (so both valid and invalid values are drawn)."""
    chars = list(draw(st.sampled_from([v for values in VALID.values() for v in values])))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(chars)))
        edit = draw(st.sampled_from(["insert", "replace", "lower", "delete"]))
        if edit == "insert":
            chars.insert(at, draw(st.sampled_from(AWKWARD)))
        elif at < len(chars) and edit == "replace":
            chars[at] = draw(st.sampled_from(AWKWARD + list("0123456789X")))
        elif at < len(chars) and edit == "lower":
            chars[at] = chars[at].lower()
        elif at < len(chars):
            del chars[at]
    return "".join(chars)


VALUES = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(AWKWARD + list("0123456789AZ"))),
    _near_valid(),
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=20))
def test_polars_twins_agree_with_the_python_functions(values: list[str]) -> None:
    frame = pl.DataFrame({"v": [*values, None]}, schema={"v": pl.String})
    got = frame.select(
        *(norm_expr("v").alias(f"n_{kind}") for kind, (_, norm_expr, _, _) in TWINS.items()),
        *(ok_expr(pl.col("v")).alias(f"ok_{kind}") for kind, (*_, ok_expr) in TWINS.items()),
        gtin_key_expr("v").alias("key"),
    )
    for kind, (norm, _, valid, _) in TWINS.items():
        assert got[f"n_{kind}"].to_list() == [*map(norm, values), None], kind
        assert got[f"ok_{kind}"].to_list() == [*map(valid, values), False], kind
    assert got["key"].to_list() == [*map(gtin_key, values), None]


def test_valid_samples_are_valid_in_both_forms() -> None:
    for kind, values in VALID.items():
        _, _, valid, valid_expr = TWINS[kind]
        assert all(map(valid, values)), kind
        assert pl.select(valid_expr(pl.lit(pl.Series(values)))).to_series().all(), kind


def test_separator_set_is_pythons_whitespace_and_dashes() -> None:
    spaces = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    stripped = {c for c in map(chr, range(0x110000)) if normalise(f"A{c}B") == "AB"}
    assert stripped == spaces | set("-.\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
    assert normalise_gtin("036000291452\u2212") == "036000291452"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("036000291452", "00036000291452"),
        ("0036000291452", "00036000291452"),
        ("0 36000 29145 2", "00036000291452"),
        ("96385074", "00000096385074"),
        ("1234567", None),
        ("123456789012345", None),
        ("36000291452.0", None),
    ],
)
def test_gtin_key_is_fourteen_digits(value: str, key: str | None) -> None:
    assert gtin_key(value) == key
    if key is not None:
        assert gtin_forms(key.lstrip("0").zfill(8)).count(value.replace(" ", "")) == 1


def test_normalise_lines_rewrites_only_identifier_columns() -> None:
    lines = pl.DataFrame(
        {
            "isrc": ["gb-aye-26-00001", "GBAYE2600002", None, "GB\u2011AYE\u201126\u201100003"],
            "upc": ["0 36000 29145 2", "036000291452", None, "36000291452.0"],
            "title": ["a-b", "c", None, "d"],
        }
    )
    out = identifiers.normalise_lines(lines)
    assert out["isrc"].to_list() == ["GBAYE2600001", "GBAYE2600002", None, "GBAYE2600003"]
    assert out["upc"].to_list() == ["036000291452", "036000291452", None, "36000291452.0"]
    assert out["title"].to_list() == lines["title"].to_list()
    assert identifiers.normalise_lines(out).equals(out)
