"""Revenue lines x splits x contract terms -> royalty earnings, in the accounting currency.

Royalties are linear in amount and quantity, so the work is done on aggregates, never on
single lines:

1. ``aggregate``: the period's matched lines summed by everything a royalty or a statement
   breakdown depends on (track, release, reporting month, usage date, territory, usage type,
   channel, source, currency). Unmatched lines are summed apart: suspense.
2. Territories are mapped to *classes*: territories inside exactly the same territory sets
   (of the splits, rates and PPD prices in force) behave identically, so splits and rates are
   resolved once per class, not once per country.
3. ``resolve``: for each distinct (track, release, usage date, territory class) the splits that
   apply (track-level splits replace release-level ones, see ``royalty_engine.splits``); then
   for each (contract, usage type, channel, usage date, class) the most specific rate:
   an exact usage type beats ``*``, an exact channel beats ``*``, a territory list beats WW,
   then the latest ``effective_from``.
4. Escalations: units are counted per *rate slot* (contract, usage type, channel, territory
   set) across periods; the tracker carries over from the previous run. A period's units are
   priced tier by tier (the part below the next ``from_units`` at the lower rate, the rest
   at the higher) and the slot's rate for the period is that blend.
5. The royalty of an aggregate for a split, in the accounting currency, by basis:
   ``gross_receipts`` amount x share x rate; ``net_receipts`` the same x (1 - distribution
   fee); ``per_unit`` quantity x share x rate (contract currency) x FX to the accounting
   currency; ``ppd`` quantity x share x rate x PPD price (its currency) x FX. Each product is
   rounded half-even at the 12th decimal place (see ``royalty_engine.money``).

Whatever is matched but not paid to a payee (no split, or the unsplit remainder) is retained
by the label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl

from royalty_engine.money import EXACT, RATE, to_decimal
from royalty_engine.periods import Period
from royalty_engine.terms import EngineError, Terms
from schemas.territories import parse_territory_set

G1_KEYS = [
    "track_id",
    "release_id",
    "reporting_period",
    "as_of",
    "territory",
    "usage_type",
    "channel",
    "currency",
    "source",
]
K1_KEYS = [
    "track_id",
    "release_id",
    "reporting_period",
    "as_of",
    "class_id",
    "usage_type",
    "channel",
    "currency",
]


def period_lines(lines: pl.LazyFrame, period: Period) -> pl.LazyFrame:
    return lines.filter(pl.col("reporting_period").is_in(period.months))


def _as_of() -> pl.Expr:
    month_end = pl.col("reporting_period").str.to_date("%Y-%m").dt.month_end()
    return pl.coalesce(pl.col("usage_end"), pl.col("usage_start"), month_end).alias("as_of")


def aggregate(lines: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(matched aggregates, suspense aggregates) of the period's lines."""
    matched = pl.col("match_method").is_not_null()
    agg = (
        lines.filter(matched)
        .with_columns(
            _as_of(),
            pl.col("territory").fill_null("WW"),
            pl.col("usage_type").fill_null("other"),
            pl.col("commercial_model").fill_null("").alias("channel"),
            pl.col("converted_currency").alias("currency"),
        )
        .group_by(G1_KEYS)
        .agg(
            pl.col("converted_amount").sum().cast(EXACT).alias("amount"),
            pl.col("quantity").fill_null(0).sum().alias("quantity"),
            pl.len().alias("lines"),
        )
    )
    suspense = (
        lines.filter(~matched)
        .with_columns(pl.col("converted_currency").alias("currency"))
        .group_by(["reporting_period", "source", "currency", "suspense_reason"])
        .agg(
            pl.col("converted_amount").sum().cast(EXACT).alias("amount"),
            pl.col("quantity").fill_null(0).sum().alias("quantity"),
            pl.len().alias("lines"),
        )
    )
    return agg, suspense


def territory_classes(territories: list[str], sets: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(territory -> class_id, class_id x territory set it belongs to)."""
    parsed = {s: parse_territory_set(s) for s in sorted({s for s in sets if s})}
    signatures: dict[str, tuple[str, ...]] = {
        t: tuple(s for s, ts in parsed.items() if ts.contains(t))
        for t in sorted({t for t in territories if t})
    }
    ids = {sig: i for i, sig in enumerate(sorted(set(signatures.values())))}
    mapping = pl.DataFrame(
        {"territory": list(signatures), "class_id": [ids[s] for s in signatures.values()]},
        schema={"territory": pl.String, "class_id": pl.Int32},
    )
    members = pl.DataFrame(
        [(i, s) for sig, i in ids.items() for s in sig],
        schema={"class_id": pl.Int32, "territories": pl.String},
        orient="row",
    )
    return mapping, members


def _in_force(date: str = "as_of") -> pl.Expr:
    return (pl.col("effective_from") <= pl.col(date)) & (
        pl.col("effective_to").is_null() | (pl.col(date) <= pl.col("effective_to"))
    )


def resolve_splits(
    placements: pl.DataFrame, splits: pl.DataFrame, members: pl.DataFrame
) -> pl.DataFrame:
    """placements (track_id, release_id, as_of, class_id) -> one row per applying split:
    placement keys + split_id, payee_id, contract_id, share."""
    keys = ["track_id", "release_id", "as_of", "class_id"]
    cols = ["split_id", "payee_id", "contract_id", "share", "territories"]
    found = []
    for level in ("track_id", "release_id"):
        level_splits = splits.filter(pl.col(level).is_not_null()).select(
            level, *cols, "effective_from", "effective_to"
        )
        hit = (
            placements.join(level_splits, on=level, how="inner")
            .filter(_in_force())
            .join(members, on=["class_id", "territories"], how="semi")
            .select(*keys, "split_id", "payee_id", "contract_id", "share")
            .with_columns(pl.lit(level).alias("level"))
        )
        found.append(hit)
    track_level, release_level = found
    release_level = release_level.join(
        track_level.select(keys).unique(), on=keys, how="anti", nulls_equal=True
    )
    applied = pl.concat([track_level, release_level])
    over = (
        applied.group_by(keys)
        .agg(pl.col("share").sum().alias("total"), pl.col("split_id").sort().alias("splits"))
        .filter(pl.col("total") > Decimal(1))
    )
    if over.height:
        raise EngineError(
            "splits_over_100",
            f"splits add up to more than 100% for {over.height} track/date/territory "
            "placement(s); fix the splits before running",
            [
                {
                    "track_id": r["track_id"],
                    "release_id": r["release_id"],
                    "as_of": str(r["as_of"]),
                    "total_share": str(r["total"]),
                    "split_ids": r["splits"],
                }
                for r in over.sort(keys).head(50).iter_rows(named=True)
            ],
        )
    return applied


def _specificity() -> pl.Expr:
    return (
        (pl.col("r_usage") != "*").cast(pl.Int32) * 4
        + (pl.col("r_channel") != "*").cast(pl.Int32) * 2
        + (pl.col("territories") != "WW").cast(pl.Int32)
    )


def resolve_rates(needs: pl.DataFrame, rates: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """needs (contract_id, usage_type, channel, as_of, class_id) -> + rate_id, slot."""
    keys = ["contract_id", "usage_type", "channel", "as_of", "class_id"]
    r = rates.select(
        "rate_id",
        "contract_id",
        pl.col("usage_type").alias("r_usage"),
        pl.col("channel").alias("r_channel"),
        "territories",
        "effective_from",
        "effective_to",
    )
    cand = (
        needs.join(r, on="contract_id", how="inner")
        .filter(
            _in_force()
            & ((pl.col("r_usage") == "*") | (pl.col("r_usage") == pl.col("usage_type")))
            & ((pl.col("r_channel") == "*") | (pl.col("r_channel") == pl.col("channel")))
        )
        .join(members, on=["class_id", "territories"], how="semi")
        .with_columns(_specificity().alias("_spec"))
        .sort([*keys, "_spec", "effective_from", "rate_id"], descending=[False] * 5 + [True] * 3)
        .unique(subset=keys, keep="first", maintain_order=True)
        .with_columns(
            pl.concat_str(
                [
                    pl.col("contract_id").cast(pl.String),
                    "r_usage",
                    "r_channel",
                    "territories",
                ],
                separator="|",
            ).alias("slot")
        )
        .select(*keys, "rate_id", "slot")
    )
    missing = needs.join(cand, on=keys, how="anti", nulls_equal=True)
    if missing.height:
        raise EngineError(
            "rate_missing",
            f"{missing.height} contract/usage combination(s) in this period have no rate; "
            "add rates (or a '*' rate) to these contracts",
            [
                {
                    "contract_id": row["contract_id"],
                    "usage_type": row["usage_type"],
                    "channel": row["channel"],
                    "as_of": str(row["as_of"]),
                }
                for row in missing.sort(keys)
                .unique(
                    subset=["contract_id", "usage_type", "channel"],
                    keep="first",
                    maintain_order=True,
                )
                .head(50)
                .iter_rows(named=True)
            ],
        )
    return cand


def blended_rate(base: Decimal, tiers: list[dict[str, Any]], prior: int, units: int) -> Decimal:
    """The period's rate for ``units`` more units after ``prior`` units, under escalation
    ``tiers`` ([{"from_units": N, "rate": "0.22"}, ...]): each unit at the rate of the tier
    it falls in; the result is their unit-weighted average (12 places). With no positive
    units in the period the rate in force at ``prior`` applies."""
    steps = sorted((int(t["from_units"]), Decimal(str(t["rate"]))) for t in tiers)
    bounds = [(0, base), *steps]

    def rate_at(position: int) -> Decimal:
        current = base
        for start, r in bounds:
            if position >= start:
                current = r
        return current

    if units <= 0:
        return rate_at(prior)
    total = Decimal(0)
    for i, (start, r) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else None
        # The first tier reaches down without limit: after returns the tracker can be
        # negative, and those units are priced at the base rate like any other.
        lo = max(start, prior) if i else prior
        hi = prior + units if end is None else min(end, prior + units)
        if hi > lo:
            total += r * (hi - lo)
    return (total / units).quantize(Decimal("1e-12"))


@dataclass
class Earnings:
    """What ``compute_earnings`` returns."""

    royalties: pl.DataFrame  # one row per aggregate x applying split (accounting currency)
    matched: pl.DataFrame  # the aggregates (G1) with class_id
    suspense: pl.DataFrame
    slots: pl.DataFrame  # per rate: slot, prior units, period units, blended rate
    unsplit: pl.DataFrame  # matched aggregates no split applied to, per currency
    read: pl.DataFrame  # every line of the period, summed per currency (for reconciliation)


class FxTable:
    """Rates from the snapshot: ``rate(base, quote, month)`` direct, or the inverse of the
    opposite quote; identity for the same currency; a missing rate is an ``EngineError``."""

    def __init__(self, fx: pl.DataFrame) -> None:
        self._rates = {
            (r["base"], r["quote"], r["period"]): to_decimal(r["rate"])
            for r in fx.iter_rows(named=True)
        }
        self.missing: set[tuple[str, str, str]] = set()

    def rate(self, base: str, quote: str, month: str) -> Decimal:
        if base == quote:
            return Decimal(1)
        direct = self._rates.get((base, quote, month))
        if direct is not None:
            return direct
        inverse = self._rates.get((quote, base, month))
        if inverse is not None and inverse != 0:
            return (Decimal(1) / inverse).quantize(Decimal("1e-12"))
        self.missing.add((base, quote, month))
        return Decimal(0)

    def raise_missing(self) -> None:
        if self.missing:
            raise EngineError(
                "fx_missing",
                "FX rate missing for "
                + ", ".join(f"{b}->{q} in {m}" for b, q, m in sorted(self.missing))
                + "; import the rates (tunemantra fx import) and run again",
                [{"base": b, "quote": q, "period": m} for b, q, m in sorted(self.missing)],
            )


def compute_earnings(
    lines: pl.LazyFrame,
    terms: Terms,
    *,
    period: Period,
    accounting_currency: str,
    prior_units: dict[str, int],
) -> Earnings:
    in_period = period_lines(lines, period)
    g1_lazy, suspense_lazy = aggregate(in_period)
    read_lazy = in_period.group_by(pl.col("converted_currency").alias("currency")).agg(
        pl.col("converted_amount").sum().cast(EXACT).alias("amount"), pl.len().alias("lines")
    )
    g1, suspense, read = pl.collect_all([g1_lazy, suspense_lazy, read_lazy])
    fx = FxTable(terms.fx)
    unconverted = g1.filter(pl.col("amount").is_null() | pl.col("currency").is_null())
    if unconverted.height or suspense.filter(pl.col("amount").is_null()).height:
        raise EngineError(
            "unconverted_lines",
            "some lines of the period have no converted amount (no FX rate when they were "
            "ingested); import the rates and run `tunemantra rematch` or re-ingest",
        )
    sets = [
        *terms.splits["territories"].to_list(),
        *terms.rates["territories"].to_list(),
        *terms.ppd_prices["territories"].to_list(),
        "WW",
    ]
    mapping, members = territory_classes(g1["territory"].unique().to_list(), sets)
    g1 = g1.join(mapping, on="territory", how="left")
    k1 = g1.group_by(K1_KEYS).agg(pl.col("amount").sum(), pl.col("quantity").sum())
    placements = k1.select("track_id", "release_id", "as_of", "class_id").unique()
    applied = resolve_splits(placements, terms.splits, members)
    k1c = k1.join(
        applied, on=["track_id", "release_id", "as_of", "class_id"], how="inner", nulls_equal=True
    )
    needs = k1c.select("contract_id", "usage_type", "channel", "as_of", "class_id").unique()
    chosen = resolve_rates(needs, terms.rates, members)
    k1c = k1c.join(
        chosen, on=["contract_id", "usage_type", "channel", "as_of", "class_id"], how="left"
    )
    # Escalation: units per rate this period (each aggregate counted once per contract).
    per_rate = (
        k1c.unique(subset=[*K1_KEYS, "contract_id"], keep="first", maintain_order=True)
        .group_by("rate_id", "slot")
        .agg(pl.col("quantity").sum().alias("units"))
        .join(terms.rates.select("rate_id", "rate", "tiers", "effective_from"), on="rate_id")
        .sort("slot", "effective_from", "rate_id")
    )
    slot_rows = []
    running = dict(prior_units)
    for row in per_rate.iter_rows(named=True):
        prior = running.get(row["slot"], 0)
        tiers = json.loads(row["tiers"] or "[]")
        eff = blended_rate(to_decimal(row["rate"]), tiers, prior, int(row["units"]))
        running[row["slot"]] = prior + int(row["units"])
        slot_rows.append(
            {
                "rate_id": row["rate_id"],
                "slot": row["slot"],
                "prior_units": prior,
                "units": int(row["units"]),
                "base_rate": to_decimal(row["rate"]),
                "effective_rate": eff,
            }
        )
    slots = pl.DataFrame(
        slot_rows,
        schema={
            "rate_id": pl.Int64,
            "slot": pl.String,
            "prior_units": pl.Int64,
            "units": pl.Int64,
            "base_rate": RATE,
            "effective_rate": RATE,
        },
        orient="row",
    )
    factors = _factors(k1c, slots, terms, members, fx, accounting_currency)
    fx.raise_missing()
    royalties = _royalties(g1, factors)
    unsplit = (
        g1.join(
            applied.select("track_id", "release_id", "as_of", "class_id").unique(),
            on=["track_id", "release_id", "as_of", "class_id"],
            how="anti",
            nulls_equal=True,
        )
        .group_by("currency")
        .agg(pl.col("amount").sum().cast(EXACT), pl.col("lines").sum())
    )
    return Earnings(
        royalties=royalties,
        matched=g1,
        suspense=suspense,
        slots=slots,
        unsplit=unsplit,
        read=read,
    )


def _factors(
    k1c: pl.DataFrame,
    slots: pl.DataFrame,
    terms: Terms,
    members: pl.DataFrame,
    fx: FxTable,
    acct: str,
) -> pl.DataFrame:
    """Per (K1 aggregate, split): the multipliers that turn its amount and quantity into the
    split's royalty: ``amount x share x rate x net`` + ``quantity x share x rate x unit``."""
    contracts = terms.contracts.select(
        "contract_id", "basis", "distribution_fee", pl.col("currency").alias("contract_currency")
    )
    f = k1c.join(slots.select("rate_id", "effective_rate"), on="rate_id", how="left").join(
        contracts, on="contract_id", how="left"
    )
    # Unit values (accounting currency per unit) for per_unit and PPD contracts.
    unit_rows = []
    per_unit = f.filter(pl.col("basis") == "per_unit")
    for cur, month in per_unit.select("contract_currency", "reporting_period").unique().rows():
        unit_rows.append(("per_unit", cur, month, None, fx.rate(cur, acct, month)))
    ppd = f.filter(pl.col("basis") == "ppd")
    if ppd.height:
        prices = _ppd_prices(ppd, terms, members, fx, acct)
        f = f.join(prices, on=["usage_type", "as_of", "class_id", "reporting_period"], how="left")
        missing = f.filter((pl.col("basis") == "ppd") & pl.col("ppd_unit").is_null())
        if missing.height:
            raise EngineError(
                "ppd_price_missing",
                "no PPD price for usage type(s) "
                + ", ".join(sorted(set(missing["usage_type"].to_list())))
                + " on a PPD contract; add PPD prices",
                [
                    {"usage_type": u, "as_of": str(d)}
                    for u, d in missing.select("usage_type", "as_of")
                    .unique()
                    .sort("usage_type")
                    .head(50)
                    .rows()
                ],
            )
    else:
        f = f.with_columns(pl.lit(None, dtype=EXACT).alias("ppd_unit"))
    fx_unit = pl.DataFrame(
        [(cur, month, rate) for _, cur, month, _, rate in unit_rows],
        schema={"contract_currency": pl.String, "reporting_period": pl.String, "fx_unit": RATE},
        orient="row",
    )
    f = f.join(fx_unit, on=["contract_currency", "reporting_period"], how="left")
    one = pl.lit(Decimal(1)).cast(RATE)
    receipts = pl.col("basis").is_in(["gross_receipts", "net_receipts"])
    net = pl.when(pl.col("basis") == "net_receipts").then(one - pl.col("distribution_fee"))
    return f.select(
        *K1_KEYS,
        "split_id",
        "payee_id",
        "contract_id",
        "share",
        "rate_id",
        "basis",
        "effective_rate",
        pl.when(receipts).then(net.otherwise(one)).otherwise(None).cast(RATE).alias("net"),
        pl.when(pl.col("basis") == "per_unit")
        .then(pl.col("fx_unit"))
        .when(pl.col("basis") == "ppd")
        .then(pl.col("ppd_unit"))
        .otherwise(None)
        .cast(EXACT)
        .alias("unit_value"),
    )


def _ppd_prices(
    ppd: pl.DataFrame, terms: Terms, members: pl.DataFrame, fx: FxTable, acct: str
) -> pl.DataFrame:
    """(usage_type, as_of, class_id, reporting_period) -> PPD per unit in the accounting
    currency: the most specific price in force (exact usage type, then a territory list over
    WW, then the latest ``effective_from``)."""
    needs = ppd.select("usage_type", "as_of", "class_id", "reporting_period").unique()
    member_of = set(members.rows())
    prices = list(terms.ppd_prices.iter_rows(named=True))
    rows = []
    for usage, as_of, class_id, month in needs.sort(pl.all()).rows():
        best: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        for p in prices:
            in_force = p["effective_from"] <= as_of and (
                p["effective_to"] is None or as_of <= p["effective_to"]
            )
            if not in_force or p["usage_type"] not in (usage, "*"):
                continue
            if (class_id, p["territories"]) not in member_of:
                continue
            key = (p["usage_type"] != "*", p["territories"] != "WW", p["effective_from"])
            if best is None or key > best[0]:
                best = (key, p)
        if best is None:
            continue
        price = best[1]
        unit = (to_decimal(price["price"]) * fx.rate(price["currency"], acct, month)).quantize(
            Decimal("1e-12")
        )
        rows.append((usage, as_of, class_id, month, unit))
    return pl.DataFrame(
        rows,
        schema={
            "usage_type": pl.String,
            "as_of": pl.Date,
            "class_id": pl.Int32,
            "reporting_period": pl.String,
            "ppd_unit": EXACT,
        },
        orient="row",
    )


def _royalties(g1: pl.DataFrame, factors: pl.DataFrame) -> pl.DataFrame:
    """Each aggregate x each split that applies to it, with its royalty (12 places)."""
    joined = g1.join(factors, on=K1_KEYS, how="inner", nulls_equal=True)
    share_amount = (pl.col("amount") * pl.col("share")).cast(EXACT)
    receipts = ((share_amount * pl.col("effective_rate")).cast(EXACT) * pl.col("net")).cast(EXACT)
    share_units = (pl.col("quantity").cast(EXACT) * pl.col("share")).cast(EXACT)
    units = ((share_units * pl.col("effective_rate")).cast(EXACT) * pl.col("unit_value")).cast(
        EXACT
    )
    return joined.with_columns(
        pl.when(pl.col("net").is_not_null())
        .then(receipts)
        .otherwise(units)
        .cast(EXACT)
        .alias("royalty")
    )
