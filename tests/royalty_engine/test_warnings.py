"""The accountant's warnings, each on tiny frames: what triggers it and what it says."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import polars as pl

from royalty_engine.periods import parse_period
from royalty_engine.terms import Terms
from royalty_engine.warnings import RunWarning, period_warnings
from tests.royalty_engine.engine_frames import lines, terms

JAN = parse_period("2026-01")


def label(**kw: Any) -> Terms:
    kw.setdefault("contracts", [{"contract_id": 1}, {"contract_id": 2, "payee_id": 2}])
    kw.setdefault(
        "payees",
        [
            {"payee_id": 1, "name": "Aurora", "statement_currency": "GBP", "withholding_rate": "0"},
            {
                "payee_id": 2,
                "name": "Borealis",
                "statement_currency": "GBP",
                "withholding_rate": "0",
            },
        ],
    )
    kw.setdefault(
        "rates",
        [
            {"rate_id": 1, "contract_id": 1, "rate": "0.2"},
            {"rate_id": 2, "contract_id": 2, "rate": "0.2"},
        ],
    )
    t = terms(**kw)
    tracks = pl.DataFrame(
        {"track_id": [1, 2], "release_id": [1, 1], "isrc": ["GBAAA2600001", "GBAAA2600002"]}
        | {"title": ["Night Drive", "Dawn"]}
    )
    return dataclasses.replace(t, tracks=tracks.cast(t.tracks.schema))


def warned(t: Terms, *rows: dict[str, Any]) -> list[RunWarning]:
    return period_warnings(lines(*(rows or ({"amount": "10"},))), t, JAN)


def test_clean_terms_warn_nothing() -> None:
    t = label(splits=[{"split_id": 1, "release_id": 1, "contract_id": 1, "share": "1"}])
    assert warned(t, {"amount": "10"}, {"amount": "3", "track_id": 2}) == []


def test_two_rates_neither_more_specific_in_every_dimension() -> None:
    t = label(
        rates=[
            {"rate_id": 7, "contract_id": 1, "rate": "0.20", "usage_type": "stream"},
            {"rate_id": 8, "contract_id": 1, "rate": "0.18", "channel": "subscription"},
            # more specific than 7 in every dimension it differs in: no warning for the pair
            {"rate_id": 9, "contract_id": 1, "rate": "0.10", "usage_type": "download"},
        ],
        splits=[{"split_id": 1, "release_id": 1, "contract_id": 1, "share": "1"}],
    )
    [w] = warned(t, {"amount": "10", "territory": "FR"})
    assert w.code == "W-RATE-AMBIGUOUS"
    assert w.subject["applied_rate_id"] == 7 and w.subject["other_rate_id"] == 8
    assert w.subject["applied_more_specific_in"] == ["usage type"]
    assert w.subject["other_more_specific_in"] == ["channel"]
    assert (w.subject["territory"], w.subject["track_id"]) == ("FR", 1)
    assert "Contract C1: rates 7" in w.message and "GBAAA2600001 “Night Drive”" in w.message
    assert "usage type outranks channel" in w.message
    # a line the channel-specific rate does not match: nothing ambiguous
    assert warned(t, {"amount": "10", "commercial_model": "ad_supported"}) == []


def test_a_territory_list_against_an_exact_usage_type() -> None:
    t = label(
        rates=[
            {"rate_id": 7, "contract_id": 1, "rate": "0.20", "usage_type": "stream"},
            {"rate_id": 8, "contract_id": 1, "rate": "0.25", "territories": "GB,IE"},
        ],
        splits=[{"split_id": 1, "release_id": 1, "contract_id": 1, "share": "1"}],
    )
    [w] = warned(t, {"amount": "10", "territory": "IE"})
    assert w.subject["other_more_specific_in"] == ["territories"]
    assert warned(t, {"amount": "10", "territory": "FR"}) == []  # rate 8 does not match FR


def test_track_split_removes_release_payees() -> None:
    t = label(
        splits=[
            {"split_id": 1, "release_id": 1, "contract_id": 1, "share": "0.6"},
            {"split_id": 2, "release_id": 1, "contract_id": 2, "payee_id": 2, "share": "0.4"},
            {"split_id": 3, "track_id": 1, "contract_id": 2, "payee_id": 2, "share": "0.5"},
        ]
    )
    ws = warned(t, {"amount": "10"}, {"amount": "3", "track_id": 2})
    [w] = ws  # track 2 keeps the release's splits: nothing to say about it
    assert w.code == "W-SPLIT-OVERRIDE"
    assert w.subject["track_id"] == 1
    assert [p["payee"] for p in w.subject["payees"]] == ["Aurora"]  # Borealis is on the track
    assert "Aurora (60% on the release, contract C1) gets nothing" in w.message


def test_share_drop_after_a_payee_had_all_of_a_track() -> None:
    jan1 = dt.date(2026, 1, 1)
    aurora = [  # all of the release until 2025, 70% from 2026
        {"split_id": 1, "release_id": 1, "contract_id": 1, "share": "1"}
        | {"effective_to": dt.date(2025, 12, 31)},
        {"split_id": 2, "release_id": 1, "contract_id": 1, "share": "0.7", "effective_from": jan1},
    ]
    t = label(splits=aurora)
    drops = [w for w in warned(t) if w.code == "W-SHARE-DROP"]
    assert [w.subject["track_id"] for w in drops] == [1, 2]  # both tracks of the release
    w = drops[0]
    assert (w.subject["payee"], w.subject["share"], w.subject["total_share"]) == (
        "Aurora",
        "0.700000000000",
        "0.700000000000",
    )
    assert w.subject["from"] == "2026-01-01" and w.subject["territories"] == "worldwide"
    assert "Aurora had 100% on 2025-12-31" in w.message and "30% of its revenue" in w.message
    # the share handed to someone else instead: the track is still 100% split, no warning
    borealis = {"split_id": 3, "release_id": 1, "contract_id": 2, "payee_id": 2, "share": "0.3"}
    t = label(splits=[*aurora, borealis | {"effective_from": jan1}])
    assert [w for w in warned(t) if w.code == "W-SHARE-DROP"] == []
