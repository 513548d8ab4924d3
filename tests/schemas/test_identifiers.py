from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum import isrc as stdnum_isrc
from stdnum.iso7064 import mod_37_36

from schemas.identifiers import (
    KINDS,
    IdentifierError,
    dpid_check_ok,
    is_valid_dpid,
    is_valid_grid,
    is_valid_gtin,
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
