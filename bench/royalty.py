"""``tunemantra bench royalty``: the royalty engine's speed on a seeded synthetic lake.

Builds, column-wise (NumPy + Polars, no Python loop per line), a lake of N canonical revenue
lines for the half-year 2026-H1 laid out like the real one
(``lake/revenue_lines/org=1/period=YYYY-MM/source=S/file=K.parquet``, ``Decimal(38, 12)``
amounts) and a terms snapshot to go with it:

* a catalogue of ``min(1,000,000, N / 10)`` tracks (8 per release) with Zipf-like popularity
  (rank ``r`` drawn with probability ~ 1/r), ~200 territories (weight ~ 1/rank^1.1), 15 sources
  with their own currency and usage-type mix (stream, download, ugc), 6 months, ~3% suspense
  lines (``match_method`` null);
* ``tracks / 20`` contracts (50,000 at full scale) on the four bases, per-usage-type rates (some
  with escalation tiers, a US rate, an ad-supported channel rate or a rate change on 1 April),
  advances and recoupable costs, reserves, withholding tax, cross-collateralisation groups,
  contract currencies EUR/USD/GBP/SEK/JPY with an FX rate for every month;
* ~2.5 release-level splits per release (shares 90% in all), some territory-limited
  (``WW,-US`` + ``US``, ``GB,IE``) or replaced on 1 April, and track-level splits on 8% of the
  tracks.

Then it times, in this process, (a) the scan floor: one DuckDB query reading every column the
engine uses and aggregating each, and (b) the engine, ``royalty_engine.engine.compute`` from
the lake's lines to statement data (``RunResult.outputs()``), called through its public entry
point only. It reports lines/s of both, the ratio engine/floor, the process's peak RSS, the
sampled RSS peak of each phase and a profile of the engine taken with cProfile: calls, time
and time in Polars per engine function (``engine_profile``). Generation time is reported but
not counted. The profile (``--profile``) comes from a second, untimed run of the engine.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import os
import platform
import pstats
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from pipelines.lake import part_name
from pipelines.layout import DataDir
from royalty_engine.engine import RunResult, compute
from royalty_engine.periods import parse_period
from royalty_engine.terms import Terms
from schemas.money import EXACT, RATE
from schemas.revenue import CANONICAL

PERIOD = "2026-H1"
MONTHS = [f"2026-{m:02d}" for m in range(1, 7)]
ADVANCES_PAID = dt.date(2025, 6, 1)
USAGE_TYPES = ["stream", "download", "ugc"]
ACCOUNTING_CURRENCY = "EUR"
TRACKS_PER_RELEASE = 8
MAX_FILE_LINES = 2_000_000
# Largest markets first; the other ~185 territories follow in alphabetical order.
TOP_TERRITORIES = [
    "US",
    "GB",
    "DE",
    "JP",
    "FR",
    "BR",
    "CA",
    "AU",
    "MX",
    "NL",
    "SE",
    "IT",
    "ES",
    "KR",
    "IN",
    "PL",
    "NO",
    "DK",
    "FI",
    "BE",
    "CH",
    "AT",
    "IE",
    "NZ",
    "AR",
    "CL",
    "CO",
    "TR",
    "ID",
    "PH",
]
# source: (share of the lines, original currency, P(stream), P(download), P(ugc))
SOURCES: dict[str, tuple[float, str, float, float, float]] = {
    "spotify": (0.30, "EUR", 1.00, 0.00, 0.00),
    "youtube": (0.15, "USD", 0.50, 0.00, 0.50),
    "apple": (0.12, "USD", 0.80, 0.20, 0.00),
    "amazon": (0.08, "USD", 0.85, 0.15, 0.00),
    "tiktok": (0.07, "USD", 0.00, 0.00, 1.00),
    "deezer": (0.05, "EUR", 1.00, 0.00, 0.00),
    "meta": (0.05, "USD", 0.00, 0.00, 1.00),
    "tidal": (0.03, "USD", 0.95, 0.05, 0.00),
    "soundcloud": (0.03, "USD", 0.80, 0.00, 0.20),
    "pandora": (0.03, "USD", 1.00, 0.00, 0.00),
    "napster": (0.02, "GBP", 1.00, 0.00, 0.00),
    "anghami": (0.02, "USD", 0.95, 0.05, 0.00),
    "boomplay": (0.02, "USD", 1.00, 0.00, 0.00),
    "jiosaavn": (0.02, "USD", 1.00, 0.00, 0.00),
    "qobuz": (0.01, "EUR", 0.60, 0.40, 0.00),
}
# Original currency -> EUR on ingestion (micro units), January; drifts a little each month.
LINE_FX_MICRO = {"EUR": 1_000_000, "USD": 925_900, "GBP": 1_171_200}
# EUR -> contract currency (micro units), January.
CONTRACT_FX_MICRO = {"USD": 1_080_000, "GBP": 853_800, "SEK": 11_420_000, "JPY": 162_150_000}
# Per unit, in micro-EUR, by usage type: what a line of that usage pays per unit.
UNIT_PRICE_MICRO = {"stream": 3_200, "download": 700_000, "ugc": 600}

FLOOR_SQL = """
SELECT count(*) AS lines,
       sum(converted_amount) AS amount,
       sum(quantity) AS quantity,
       sum(track_id) AS track_ids,
       sum(release_id) AS release_ids,
       sum(length(match_method)) AS match_method,
       sum(length(suspense_reason)) AS suspense_reason,
       sum(length(territory)) AS territory,
       sum(length(source)) AS source,
       sum(length(usage_type)) AS usage_type,
       sum(length(commercial_model)) AS commercial_model,
       sum(length(reporting_period)) AS reporting_period,
       sum(length(converted_currency)) AS currency,
       count(usage_start) AS usage_start,
       count(usage_end) AS usage_end
FROM read_parquet($files)
"""


# --- generation -----------------------------------------------------------------------------
def scale(lines: int) -> dict[str, int]:
    """Catalogue sizes for ``lines`` lines: full scale (1M tracks, 50k contracts) from 1e7."""
    tracks = max(1_000, min(1_000_000, lines // 10))
    return {
        "tracks": tracks,
        "releases": -(-tracks // TRACKS_PER_RELEASE),
        "contracts": max(50, tracks // 20),
    }


def _territories() -> list[str]:
    from schemas.territories import ALL_TERRITORIES

    rest = sorted(ALL_TERRITORIES - set(TOP_TERRITORIES))
    return [*TOP_TERRITORIES, *rest][:200]


def _micro(values: np.ndarray | pl.Series) -> pl.Expr:
    """Integer micro units -> exact Decimal(38, 12) (no float on the way)."""
    return (pl.lit(pl.Series(values)).cast(EXACT) / 1_000_000).cast(EXACT)


def _zipf_index(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """Ranks 0..size-1 with P(rank r) ~ 1/(r+1): the inverse CDF of a 1/x law."""
    return np.minimum(np.floor((size + 1.0) ** rng.random(n)).astype(np.int64) - 1, size - 1)


def build_terms(sizes: dict[str, int], seed: int) -> Terms:
    """The terms snapshot: payees, contracts, rates, charges, splits, PPD prices, FX, tracks."""
    rng = np.random.default_rng(seed)
    n_tracks, n_releases, n_contracts = sizes["tracks"], sizes["releases"], sizes["contracts"]
    start = dt.date(2020, 1, 1)

    # Payees and contracts: 80% of payees have one contract, the rest two or more.
    n_payees = max(1, int(n_contracts * 0.8))
    contract_payee = np.concatenate(
        [np.arange(n_payees), rng.integers(0, n_payees, n_contracts - n_payees)]
    )
    rng.shuffle(contract_payee)
    payee_currency = rng.choice(
        ["EUR", "USD", "GBP", "SEK", "JPY"], n_payees, p=[0.5, 0.25, 0.15, 0.05, 0.05]
    )
    contract_ids = np.arange(1, n_contracts + 1)
    per_payee = np.bincount(contract_payee, minlength=n_payees)
    pooled = (per_payee[contract_payee] > 1) & (rng.random(n_contracts) < 0.6)
    basis = rng.choice(
        ["net_receipts", "gross_receipts", "per_unit", "ppd"],
        n_contracts,
        p=[0.55, 0.30, 0.10, 0.05],
    )
    reserve = rng.random(n_contracts) < 0.2
    payees = pl.DataFrame(
        {
            "payee_id": np.arange(1, n_payees + 1),
            "name": [f"Payee {i}" for i in range(1, n_payees + 1)],
            "statement_currency": payee_currency,
        }
    ).with_columns(
        _micro(rng.choice([0, 0, 0, 0, 0, 0, 150_000, 300_000], n_payees)).alias(
            "withholding_rate"
        ),
        pl.lit(False).alias("self_billing"),
    )
    contracts = pl.DataFrame(
        {
            "contract_id": contract_ids,
            "payee_id": contract_payee + 1,
            "basis": basis,
            "currency": payee_currency[contract_payee],
            "cross_collateral_group": pl.Series(np.where(pooled, "main", "")).replace("", None),
            "reserve_periods": np.where(reserve, 2, 0),
            "statement_frequency": rng.choice(
                ["monthly", "quarterly", "half_yearly"], n_contracts, p=[0.3, 0.4, 0.3]
            ),
            "start_date": np.datetime64(start, "D")
            + rng.integers(0, 6 * 365, n_contracts).astype("timedelta64[D]"),
        }
    ).with_columns(
        pl.format("C-{}", "contract_id").alias("reference"),
        _micro(np.where(basis == "net_receipts", 150_000, 0)).alias("distribution_fee"),
        _micro(np.where(reserve, 100_000, 0)).alias("reserve_rate"),
        _micro(np.full(n_contracts, 25_000_000)).alias("minimum_payment"),
        pl.col("start_date").cast(pl.Date),
    )

    # Rates: one per contract and usage type (WW, any channel); escalation tiers on 10% of
    # the receipts-based contracts' streams; a US rate, an ad-supported rate, a new rate
    # from 1 April on a few.
    receipts = np.isin(basis, ["net_receipts", "gross_receipts"])
    base_micro = rng.choice([150_000, 180_000, 200_000, 250_000, 300_000, 500_000], n_contracts)
    unit_micro = {"stream": 800, "download": 250_000, "ugc": 200}
    ppd_micro = {"stream": 200_000, "download": 150_000, "ugc": 100_000}
    rate_parts = []
    for usage in USAGE_TYPES:
        value = np.where(
            receipts,
            base_micro,
            np.where(basis == "per_unit", unit_micro[usage], ppd_micro[usage]),
        )
        tiered = receipts & (rng.random(n_contracts) < 0.1) & (usage == "stream")
        tiers = np.where(
            tiered,
            [
                f'[{{"from_units": 10000, "rate": "{(v + 50_000) / 1e6:.2f}"}}, '
                f'{{"from_units": 1000000, "rate": "{(v + 100_000) / 1e6:.2f}"}}]'
                for v in value
            ],
            "[]",
        )
        rate_parts.append(_rate_frame(contract_ids, usage, "*", "WW", value, tiers, start))
        if usage == "stream":
            for share, channel, territories, bump, since in (
                (0.05, "*", "US", 20_000, start),
                (0.05, "ad_supported", "WW", -50_000, start),
                (0.03, "*", "WW", 30_000, dt.date(2026, 4, 1)),
            ):
                pick = (rng.random(n_contracts) < share) & receipts
                rate_parts.append(
                    _rate_frame(
                        contract_ids[pick],
                        usage,
                        channel,
                        territories,
                        value[pick] + bump,
                        np.full(int(pick.sum()), "[]"),
                        since,
                    )
                )
    rates = pl.concat(rate_parts).with_row_index("rate_id", offset=1)

    # Charges: advances (25% of contracts, some in EUR), recoupable costs in the period.
    charge_parts = []
    for kind, share, low, high, on in (
        ("advance", 0.25, 100, 20_000, ADVANCES_PAID),
        ("recoupable_cost", 0.10, 50, 2_000, dt.date(2026, 2, 15)),
    ):
        pick = rng.random(n_contracts) < share
        cur = np.where(
            rng.random(int(pick.sum())) < 0.2, "EUR", payee_currency[contract_payee][pick]
        )
        units = rng.integers(low, high, int(pick.sum())) * np.where(cur == "JPY", 150, 1)
        charge_parts.append(
            pl.DataFrame({"contract_id": contract_ids[pick], "currency": cur}).with_columns(
                pl.lit(kind).alias("kind"),
                _micro(units * 1_000_000).alias("amount"),
                pl.lit(on).alias("incurred_on"),
            )
        )
    charges = pl.concat(charge_parts).with_row_index("charge_id", offset=1)

    splits = _splits(rng, n_tracks, n_releases, n_contracts, contract_payee, start)

    ppd_prices = pl.DataFrame(
        {
            "price_id": [1, 2, 3, 4],
            "usage_type": ["stream", "ugc", "download", "download"],
            "territories": ["WW", "WW", "WW", "US"],
            "currency": ["EUR", "EUR", "EUR", "USD"],
            "effective_from": [start] * 4,
        }
    ).with_columns(_micro(np.array([4_000, 1_000, 990_000, 1_290_000])).alias("price"))
    # Rates for the period's months, and for the month the advances were paid (a charge in
    # another currency is converted at the rate of the month it was incurred).
    fx = pl.DataFrame(
        [
            (ACCOUNTING_CURRENCY, quote, month, rate + i * (rate // 500), "ecb")
            for quote, rate in CONTRACT_FX_MICRO.items()
            for i, month in enumerate([ADVANCES_PAID.strftime("%Y-%m"), *MONTHS], start=-1)
        ],
        schema=["base", "quote", "period", "rate_micro", "source"],
        orient="row",
    ).with_columns((pl.col("rate_micro").cast(RATE) / 1_000_000).cast(RATE).alias("rate"))
    track_ids = np.arange(1, n_tracks + 1)
    tracks = pl.DataFrame(
        {"track_id": track_ids, "release_id": (track_ids - 1) // TRACKS_PER_RELEASE + 1}
    ).with_columns(
        pl.format("QZBEN{}", pl.col("track_id").cast(pl.String).str.zfill(7)).alias("isrc")
    )
    return Terms.from_frames(
        {
            "payees": payees,
            "contracts": contracts,
            "rates": rates,
            "charges": charges,
            "splits": splits,
            "ppd_prices": ppd_prices,
            "fx": fx,
            "tracks": tracks,
        }
    )


def _rate_frame(
    contract_ids: np.ndarray,
    usage: str,
    channel: str,
    territories: str,
    micro: np.ndarray,
    tiers: np.ndarray,
    since: dt.date,
) -> pl.DataFrame:
    return pl.DataFrame({"contract_id": contract_ids, "tiers": tiers}).with_columns(
        pl.lit(usage).alias("usage_type"),
        pl.lit(channel).alias("channel"),
        pl.lit(territories).alias("territories"),
        _micro(micro).alias("rate"),
        pl.lit(since).alias("effective_from"),
    )


def _splits(
    rng: np.random.Generator,
    n_tracks: int,
    n_releases: int,
    n_contracts: int,
    contract_payee: np.ndarray,
    start: dt.date,
) -> pl.DataFrame:
    """Release-level splits (1-4 per release, 2.5 on average, 90% in all; some limited to
    territories or replaced on 1 April) and track-level ones on 8% of the tracks."""
    k = rng.choice([1, 2, 3, 4], n_releases, p=[0.15, 0.35, 0.35, 0.15])
    release = np.repeat(np.arange(1, n_releases + 1), k)
    position = np.arange(release.size) - np.repeat(np.cumsum(k) - k, k)
    share = 900_000 // np.repeat(k, k)
    territories = np.full(release.size, "WW", dtype=object)
    special = rng.random(n_releases)
    ex_us = np.repeat(special < 0.05, k) & (position == 0)
    gb_ie = np.repeat((special >= 0.05) & (special < 0.08), k) & (position == 0)
    territories[ex_us] = "WW,-US"
    territories[gb_ie] = "GB,IE"
    effective_to = np.full(release.size, None, dtype=object)
    replaced = (position == 1) & (rng.random(release.size) < 0.03)
    effective_to[replaced] = dt.date(2026, 3, 31)
    parts: list[tuple[Any, ...]] = [
        (
            release,
            None,
            share,
            territories,
            np.full(release.size, start, dtype=object),
            effective_to,
        ),
        (release[ex_us], None, share[ex_us], "US", start, None),
        (
            release[replaced],
            None,
            share[replaced],
            territories[replaced],
            dt.date(2026, 4, 1),
            None,
        ),
    ]
    on_track = np.flatnonzero(rng.random(n_tracks) < 0.08) + 1
    parts.append(
        (None, np.repeat(on_track, 2), np.full(2 * on_track.size, 450_000), "WW", start, None)
    )
    frames = []
    for rel, trk, shr, terr, since, until in parts:
        n = len(shr)
        contract = rng.integers(0, n_contracts, n)
        frames.append(
            pl.DataFrame(
                {
                    "track_id": pl.Series(trk if trk is not None else [None] * n, dtype=pl.Int64),
                    "release_id": pl.Series(rel if rel is not None else [None] * n, dtype=pl.Int64),
                    "payee_id": contract_payee[contract] + 1,
                    "contract_id": contract + 1,
                    "territories": pl.Series(
                        list(terr) if isinstance(terr, np.ndarray) else [terr] * n, dtype=pl.String
                    ),
                    "effective_from": pl.Series(
                        list(since) if isinstance(since, np.ndarray) else [since] * n, dtype=pl.Date
                    ),
                    "effective_to": pl.Series(
                        list(until) if isinstance(until, np.ndarray) else [until] * n, dtype=pl.Date
                    ),
                }
            ).with_columns(_micro(shr).alias("share"))
        )
    return pl.concat(frames).with_row_index("split_id", offset=1)


@dataclass
class Lake:
    files: list[Path]
    lines: int = 0
    suspense_lines: int = 0
    amount: Decimal = Decimal(0)  # sum of converted_amount (EUR), exact
    bytes: int = 0

    def summary(self) -> dict[str, Any]:
        """What a benchmark's result says of the lake it ran on."""
        return {
            "files": len(self.files),
            "bytes": self.bytes,
            "lines": self.lines,
            "suspense_lines": self.suspense_lines,
            "amount": str(self.amount),
        }


def write_lake(root: Path, lines: int, sizes: dict[str, int], seed: int) -> Lake:
    """``lines`` canonical lines over 6 months x 15 sources, at most ``MAX_FILE_LINES`` a file."""
    rng = np.random.default_rng(seed + 1)
    n_tracks = sizes["tracks"]
    popularity = rng.permutation(n_tracks)  # rank -> track index
    territories = _territories()
    weights = 1.0 / np.arange(1, len(territories) + 1) ** 1.1
    share = np.array([s[0] for s in SOURCES.values()])
    per_partition = rng.multinomial(
        lines, np.outer(np.full(len(MONTHS), 1 / len(MONTHS)), share / share.sum()).ravel()
    ).reshape(len(MONTHS), len(SOURCES))
    lake = Lake(files=[])
    file_id = 0
    for m, month in enumerate(MONTHS):
        for s, (source, (_, currency, *mix)) in enumerate(SOURCES.items()):
            n_part = int(per_partition[m, s])
            chunks = -(-n_part // MAX_FILE_LINES)
            for k in range(chunks):
                n = n_part // chunks + (1 if k < n_part % chunks else 0)
                file_id += 1
                frame = _lines(
                    rng, n, month, m, source, currency, mix, popularity, territories, weights
                ).with_columns(
                    pl.lit(file_id, dtype=pl.Int64).alias("file_id"),
                    pl.lit(f"{file_id:064x}").alias("file_sha256"),
                )
                path = DataDir(root).partition(
                    "revenue_lines", 1, month, source, file_id
                ) / part_name(0)
                path.parent.mkdir(parents=True, exist_ok=True)
                frame = frame.select(
                    [
                        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
                        for c, t in CANONICAL.items()
                    ]
                )
                frame.write_parquet(path, compression="zstd", statistics=True)
                lake.files.append(path)
                lake.lines += frame.height
                lake.suspense_lines += int(frame["match_method"].null_count())
                lake.amount += Decimal(str(frame["converted_amount"].sum()))
                lake.bytes += path.stat().st_size
    return lake


def _lines(
    rng: np.random.Generator,
    n: int,
    month: str,
    month_index: int,
    source: str,
    currency: str,
    mix: list[float],
    popularity: np.ndarray,
    territories: list[str],
    weights: np.ndarray,
) -> pl.DataFrame:
    """One file's lines, column-wise."""
    first = dt.date(2026, month_index + 1, 1)
    last = dt.date(2026, month_index + 2, 1) - dt.timedelta(days=1) if month_index < 11 else first
    track = popularity[_zipf_index(rng, popularity.size, n)]
    suspense = rng.random(n) < 0.03
    usage = rng.choice(len(USAGE_TYPES), n, p=np.array(mix) / sum(mix))
    model = np.where(
        usage == 0, np.where(rng.random(n) < 0.7, 0, 1), np.where(usage == 1, 2, 1)
    )  # 0 subscription, 1 ad_supported, 2 purchase
    quantity = rng.geometric(np.array([0.02, 0.7, 0.005])[usage])
    refund = rng.random(n) < 0.002
    quantity = np.where(refund, -quantity, quantity)
    price = np.array([UNIT_PRICE_MICRO[u] for u in USAGE_TYPES])[usage]
    line_fx = LINE_FX_MICRO[currency] + month_index * 1_000 * (currency != "EUR")
    # amount in the original currency, in micro units: units x unit price x noise / FX
    amount = quantity * price * rng.integers(50, 150, n) // 100 * 1_000_000 // line_fx
    strings = {
        "territory": (territories, rng.choice(len(territories), n, p=weights / weights.sum())),
        "usage_type": (USAGE_TYPES, usage),
        "commercial_model": (["subscription", "ad_supported", "purchase"], model),
    }
    fx_rate = (pl.lit(line_fx).cast(EXACT) / 1_000_000).cast(EXACT)
    return pl.DataFrame(
        {
            "line_no": np.arange(1, n + 1),
            "track_id": np.where(suspense, -1, track + 1),
            "quantity": quantity,
            "amount_micro": amount,
            "suspense": suspense,
        }
    ).with_columns(
        *(
            pl.Series(values, dtype=pl.String).gather(idx).alias(name)
            for name, (values, idx) in strings.items()
        ),
        pl.lit(1).alias("org_id"),
        pl.lit(source).alias("source"),
        pl.lit(source).alias("service"),
        pl.lit(month).alias("reporting_period"),
        pl.lit(first).alias("usage_start"),
        pl.lit(last).alias("usage_end"),
        pl.when(pl.col("suspense")).then(None).otherwise(pl.col("track_id")).alias("track_id"),
        pl.when(pl.col("suspense"))
        .then(None)
        .otherwise((pl.col("track_id") - 1) // TRACKS_PER_RELEASE + 1)
        .alias("release_id"),
        pl.when(pl.col("suspense"))
        .then(pl.format("QZUNK{}", pl.col("line_no").cast(pl.String).str.zfill(7)))
        .otherwise(pl.format("QZBEN{}", pl.col("track_id").cast(pl.String).str.zfill(7)))
        .alias("isrc"),
        pl.when(pl.col("suspense")).then(None).otherwise(pl.lit("isrc")).alias("match_method"),
        pl.when(pl.col("suspense"))
        .then(pl.lit("isrc_unknown"))
        .otherwise(None)
        .alias("suspense_reason"),
        (pl.col("amount_micro").cast(EXACT) / 1_000_000).cast(EXACT).alias("amount"),
        pl.lit(currency).alias("currency"),
        pl.lit("net").alias("gross_net"),
        fx_rate.alias("fx_rate"),
        pl.lit("bench").alias("fx_source"),
        pl.lit(ACCOUNTING_CURRENCY).alias("converted_currency"),
        ((pl.col("amount_micro").cast(EXACT) / 1_000_000).cast(EXACT) * fx_rate)
        .cast(EXACT)
        .alias("converted_amount"),
    )


# --- measuring ------------------------------------------------------------------------------
def rss_bytes() -> int:
    """This process's resident set size now (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: no sampling
        return 0


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), rss_bytes()))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=rss_bytes())


def mib(n: float) -> int:
    """Bytes as whole MiB, as the results report memory."""
    return round(n / 2**20)


def _log(message: str) -> None:
    """Progress on stderr (a 1e8-line run takes minutes); the figures go to the result."""
    sys.stderr.write(f"[bench royalty {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def scan_floor(files: list[Path]) -> dict[str, Any]:
    """One DuckDB query reading and aggregating every column the engine uses."""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        row = con.execute(FLOOR_SQL, {"files": [str(f) for f in files]}).fetchone()
        assert row is not None
        names = [d[0] for d in con.description or []]
    finally:
        con.close()
    return dict(zip(names, row, strict=True))


GRAIN_SQL = """
WITH grain AS (
    SELECT o.track_id AS track_id, l.release_id, l.reporting_period,
           {segment} AS segment,
           coalesce(c.class_id, $unknown) AS class_id,
           coalesce(l.usage_type, 'other') AS usage_type,
           coalesce(l.commercial_model, '') AS channel,
           sum(l.converted_amount) AS amount,
           sum(coalesce(l.quantity, 0)) AS quantity,
           count(*) AS lines
    FROM read_parquet($files) l
    LEFT JOIN classes c ON c.territory = coalesce(l.territory, 'WW')
    LEFT JOIN overrides o ON o.track_id = l.track_id
    WHERE l.match_method IS NOT NULL AND l.reporting_period IN $months
    GROUP BY ALL
)
SELECT count(*) AS groups, sum(lines) AS lines, sum(amount) AS amount FROM grain
"""


def grain_floor(files: list[Path], terms: Terms, work: Path) -> dict[str, Any]:
    """One DuckDB query doing only the engine's first step: the period's matched lines summed
    at the grain the terms make royalties depend on (``earnings.Grain``: track where it has
    its own splits, release, month, effective-date segment, territory class, usage type,
    channel). No split, rate or balance: whatever computes the royalties must at least do
    this, so its time against the scan floor shows how much of the ratio any engine on
    these tools has to spend. Capped at 3 GiB (spilling to ``work``), below the engine's
    peak, so the run's peak RSS stays the engine's."""
    from royalty_engine.earnings import Grain

    grain = Grain.of(terms)
    period = parse_period(PERIOD)
    # the segment: how many boundaries are on or before the usage date (one comparison per
    # boundary, each a query parameter: only their number shapes the SQL)
    bounds = {f"b{i}": b for i, b in enumerate(grain.boundaries)}
    segment = " + ".join(
        [f"CAST(coalesce(l.usage_end, l.usage_start) >= ${name} AS INTEGER)" for name in bounds]
        or ["0"]
    )
    classes = pl.DataFrame(
        {"territory": list(grain.classes), "class_id": list(grain.classes.values())}
    )
    overrides = grain.override_tracks.to_frame("track_id")
    con = duckdb.connect(
        config={"memory_limit": "3GB", "temp_directory": str(work / "duckdb_spill")}
    )
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("classes", classes.to_arrow())
        con.register("overrides", overrides.to_arrow())
        row = con.execute(
            GRAIN_SQL.replace("{segment}", segment),
            {
                "files": [str(f) for f in files],
                "months": list(period.months),
                "unknown": grain.classes["ZZ"],
                **bounds,
            },
        ).fetchone()
        assert row is not None
    finally:
        con.close()
    return {"groups": int(row[0]), "lines": int(row[1] or 0), "amount": row[2]}


def _engine_function(func: tuple[str, int, str]) -> bool:
    return f"{os.sep}royalty_engine{os.sep}" in func[0]


def _polars_function(func: tuple[str, int, str]) -> bool:
    return f"{os.sep}polars{os.sep}" in func[0]


def engine_profile(profiler: cProfile.Profile, top: int = 20) -> list[dict[str, Any]]:
    """The engine's functions, from a cProfile of one run, slowest first: per function its
    calls, its time exclusive of the engine functions it called (``seconds``, Polars work
    included: that is where the engine's own work runs), its inclusive time, and the time
    and number of the Polars calls it made itself (``polars_seconds``, ``polars_calls``: its
    queries, joins and group-bys; each counted once, at the engine function that made it).
    Read from cProfile's caller table, so the engine is neither wrapped nor patched."""
    # {function: (primitive calls, calls, own time, inclusive time, {caller: (same four)})}
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    engine = {func for func in stats if _engine_function(func)}
    in_engine: dict[Any, float] = dict.fromkeys(engine, 0.0)  # time in engine callees
    in_polars: dict[Any, float] = dict.fromkeys(engine, 0.0)
    polars_calls: dict[Any, int] = dict.fromkeys(engine, 0)
    for callee, (*_, callers) in stats.items():
        for caller, (_, calls, _, inclusive) in callers.items():
            if caller not in engine or caller == callee:
                continue
            if callee in engine:
                in_engine[caller] += inclusive
            elif _polars_function(callee):
                in_polars[caller] += inclusive
                polars_calls[caller] += calls
    rows = []
    for func in engine:
        filename, line, name = func
        _, calls, _, inclusive, _ = stats[func]
        rows.append(
            {
                "step": name,
                "where": f"{Path(filename).name}:{line}",
                "calls": calls,
                "seconds": round(max(inclusive - in_engine[func], 0.0), 3),
                "inclusive": round(inclusive, 3),
                "polars_seconds": round(in_polars[func], 3),
                "polars_calls": polars_calls[func],
            }
        )
    rows.sort(key=lambda r: (-r["seconds"], -r["inclusive"], r["where"]))
    return rows[:top]


def run_engine(files: list[Path], terms: Terms) -> tuple[RunResult, dict[str, pl.DataFrame]]:
    """The engine's public entry point on the lake's files: the run and its output frames."""
    lines = pl.scan_parquet(files, hive_partitioning=False)
    result = compute(
        lines, terms, {}, parse_period(PERIOD), accounting_currency=ACCOUNTING_CURRENCY
    )
    return result, result.outputs()


def run(
    lines: int, *, seed: int = 1, keep: Path | None = None, profile: bool = False
) -> dict[str, Any]:
    """Generate the lake (untimed), then time the scan floor and the engine on it. With
    ``profile``, the engine then runs once more under cProfile (``engine_profile``): the
    timed run is never profiled, as cProfile's cost per Python call would inflate it."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tm-bench-royalty-", dir=keep))
    try:
        with RssSampler() as sampler:
            t0 = time.perf_counter()
            sizes = scale(lines)
            _log(f"generating {lines:,} lines, catalogue {sizes} in {work}")
            terms = build_terms(sizes, seed)
            lake = write_lake(work, lines, sizes, seed)
            t1 = time.perf_counter()
            _log(f"generated in {t1 - t0:.1f} s ({lake.bytes / 2**30:.2f} GiB); scan floor")
            floor = scan_floor(lake.files)
            t2 = time.perf_counter()
            _log(f"scan floor {t2 - t1:.2f} s; engine")
            rss_before_engine = rss_bytes()
            result, outputs = run_engine(lake.files, terms)
            t3 = time.perf_counter()
            max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            _log(f"engine {t3 - t2:.2f} s; grain floor")
            grain = grain_floor(lake.files, terms, work)
            t4 = time.perf_counter()
            _log(f"grain floor {t4 - t3:.2f} s")
            profiled: dict[str, Any] | None = None
            if profile:
                _log("engine again, under cProfile")
                profiler = cProfile.Profile()
                with profiler:
                    run_engine(lake.files, terms)
                profiled = {
                    "seconds": round(time.perf_counter() - t4, 3),
                    "steps": engine_profile(profiler),
                }
        floor_s, engine_s, grain_s = t2 - t1, t3 - t2, t4 - t3
        eur = result.totals.get(ACCOUNTING_CURRENCY, {})
        out: dict[str, Any] = {
            "lines": lines,
            "period": PERIOD,
            "seed": seed,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "duckdb": duckdb.__version__,
            "catalogue": {
                **sizes,
                "payees": terms.payees.height,
                "splits": terms.splits.height,
                "rates": terms.rates.height,
                "charges": terms.charges.height,
                "territories": len(_territories()),
                "sources": len(SOURCES),
            },
            "lake": lake.summary(),
            "generate_seconds": round(t1 - t0, 2),
            "floor_seconds": round(floor_s, 3),
            "floor_lines_per_second": round(lines / floor_s),
            "floor_check": {"lines": floor["lines"], "amount": str(floor["amount"])},
            "engine_seconds": round(engine_s, 3),
            "engine_lines_per_second": round(lines / engine_s),
            "ratio": round(engine_s / floor_s, 2),
            # the engine's first step alone, in DuckDB (``grain_floor``)
            "grain_floor_seconds": round(grain_s, 3),
            "grain_floor_ratio": round(grain_s / floor_s, 2),
            "grain_floor_check": {
                "groups": grain["groups"],
                "lines": grain["lines"],
                "amount": str(grain["amount"]),
            },
            # the kernel's high-water mark, or a sampled figure if /proc/self/statm (which
            # counts pages slightly differently) ever saw more
            "peak_rss_mib": mib(max(max_rss, sampler.peak(t0, t3))),
            "floor_peak_rss_mib": mib(sampler.peak(t1, t2)),
            "engine_peak_rss_mib": mib(sampler.peak(t2, t3)),
            "grain_floor_peak_rss_mib": mib(sampler.peak(t3, t4)),
            "rss_before_engine_mib": mib(rss_before_engine),
            "engine_counts": result.counts,
            "engine_totals": eur,
            "outputs": {name: frame.height for name, frame in outputs.items()},
        }
        if profiled is not None:
            out["profile"] = profiled
        return out
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
