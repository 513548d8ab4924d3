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
   rounded half-even at the 12th decimal place (see ``schemas.money``).

Whatever is matched but not paid to a payee (no split, or the unsplit remainder) is retained
by the label.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

import polars as pl

from royalty_engine.fx import inverse_rate
from royalty_engine.periods import Period
from royalty_engine.terms import EngineError, Terms
from schemas.effective import in_force, in_force_expr
from schemas.money import EXACT, RATE, to_decimal
from schemas.territories import parse_territory_set

# The grain everything after the scan works on: what a royalty can depend on, and nothing
# more. ``track_id`` is kept only for tracks that have track-level splits (otherwise the
# release's splits decide and the track does not matter); the usage date is reduced to the
# *segment* between consecutive effective dates of the terms; the territory to its class.
P_KEYS = [
    "track_id",
    "release_id",
    "reporting_period",
    "as_of",
    "class_id",
    "usage_type",
    "channel",
]
K1_KEYS = P_KEYS  # the keys an aggregate is identified by downstream
FAR_PAST = dt.date(1900, 1, 1)
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def period_lines(lines: pl.LazyFrame, period: Period) -> pl.LazyFrame:
    return lines.filter(pl.col("reporting_period").is_in(period.months))


@dataclass
class Grain:
    """How lines are reduced before anything fans out (built from the terms alone)."""

    classes: dict[str, int]  # territory -> class id ("" = any code no set names)
    members: pl.DataFrame  # class_id x territory set it belongs to
    boundaries: list[dt.date]  # every date on which some split, rate or price changes
    override_tracks: pl.Series  # tracks with track-level splits

    @classmethod
    def of(cls, terms: Terms) -> Grain:
        from schemas.territories import ALL_TERRITORIES

        sets = [
            *terms.splits["territories"].to_list(),
            *terms.rates["territories"].to_list(),
            *terms.ppd_prices["territories"].to_list(),
            "WW",
        ]
        mapping, members = territory_classes([*sorted(ALL_TERRITORIES), "WW", "ZZ"], sets)
        classes = dict(mapping.rows())
        dates: set[dt.date] = set()
        for frame in (terms.splits, terms.rates, terms.ppd_prices):
            dates.update(frame["effective_from"].drop_nulls().unique().to_list())
            dates.update(
                d + dt.timedelta(days=1)
                for d in frame["effective_to"].drop_nulls().unique().to_list()
            )
        tracks = terms.splits.filter(pl.col("track_id").is_not_null())["track_id"].unique()
        return cls(classes, members, sorted(dates), tracks.sort())

    def segment_start(self, segment: int) -> dt.date:
        return self.boundaries[segment - 1] if segment > 0 else FAR_PAST

    def segment_table(self) -> pl.DataFrame:
        """segment -> the date it starts on (the date its terms are resolved at)."""
        n = len(self.boundaries) + 1
        return pl.DataFrame(
            {"segment": list(range(n)), "as_of": [self.segment_start(i) for i in range(n)]},
            schema={"segment": pl.Int32, "as_of": pl.Date},
        )

    def segment(self, usage_date: pl.Expr, lo: dt.date | None, hi: dt.date | None) -> pl.Expr:
        """The segment of each date: how many boundaries are on or before it. Written as a
        sum of comparisons against the boundaries inside the dates' range [lo, hi] (those
        before it count for every date), which streams in bounded memory."""
        before = sum(1 for b in self.boundaries if lo is not None and b <= lo)
        inside = [b for b in self.boundaries if (lo is None or b > lo) and (hi is None or b <= hi)]
        return sum(
            ((usage_date >= b).cast(pl.Int32) for b in inside), pl.lit(before, dtype=pl.Int32)
        )


def aggregate(
    lines: pl.LazyFrame,
    grain: Grain,
    *,
    dates: tuple[dt.date | None, dt.date | None] = (None, None),
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """(matched aggregates at ``P_KEYS`` grain with a ``segment`` instead of ``as_of``,
    suspense aggregates, every line summed per currency) in one streaming pass over the lines.
    ``dates``: the range of the lines' usage dates, if known (fewer comparisons)."""
    matched = pl.col("match_method").is_not_null()
    usage_date = pl.coalesce(pl.col("usage_end"), pl.col("usage_start"))
    unknown = grain.classes["ZZ"]
    classes = pl.LazyFrame(
        {"territory": list(grain.classes), "class_id": list(grain.classes.values())},
        schema={"territory": pl.String, "class_id": pl.Int32},
    )
    agg = (
        lines.filter(matched)
        .with_columns(pl.col("territory").fill_null("WW"))
        .join(classes, on="territory", how="left")
        .select(
            pl.when(pl.col("track_id").is_in(grain.override_tracks.implode()))
            .then(pl.col("track_id"))
            .alias("track_id"),
            pl.col("release_id"),
            pl.col("reporting_period").cast(pl.Categorical),
            grain.segment(usage_date, *dates).alias("segment"),
            pl.col("class_id").fill_null(unknown),
            pl.col("usage_type").fill_null("other").cast(pl.Categorical),
            pl.col("commercial_model").fill_null("").cast(pl.Categorical).alias("channel"),
            pl.col("converted_amount"),
            pl.col("quantity"),
        )
        .group_by(
            "track_id",
            "release_id",
            "reporting_period",
            "segment",
            "class_id",
            "usage_type",
            "channel",
        )
        .agg(
            pl.col("converted_amount").sum().cast(EXACT).alias("amount"),
            pl.col("quantity").fill_null(0).sum().alias("quantity"),
            pl.len().alias("lines"),
        )
    )
    suspense = (
        lines.filter(~matched)
        .group_by(
            "reporting_period",
            "source",
            pl.col("converted_currency").alias("currency"),
            "suspense_reason",
        )
        .agg(
            pl.col("converted_amount").sum().cast(EXACT).alias("amount"),
            pl.col("quantity").fill_null(0).sum().alias("quantity"),
            pl.len().alias("lines"),
        )
    )
    read = lines.group_by(pl.col("converted_currency").alias("currency")).agg(
        pl.col("converted_amount").sum().cast(EXACT).alias("amount"),
        pl.len().alias("lines"),
        # matched lines with no converted amount: the run cannot pay from them. Unmatched
        # ones stay in suspense (under no currency) until their rate is imported.
        (pl.col("converted_amount").is_null() & pl.col("match_method").is_not_null())
        .sum()
        .alias("unconverted"),
    )
    return agg, suspense, read


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


def resolve_splits(
    placements: pl.DataFrame, splits: pl.DataFrame, members: pl.DataFrame
) -> pl.DataFrame:
    """placements (track_id, release_id, as_of, class_id) -> one row per applying split:
    placement keys + split_id, payee_id, contract_id, share."""
    keys = placements.columns  # track_id, release_id, as_of, class_id (+ codes to keep)
    cols = ["split_id", "payee_id", "contract_id", "share", "territories"]
    found = []
    for level in ("track_id", "release_id"):
        level_splits = splits.filter(pl.col(level).is_not_null()).select(
            level, *cols, "effective_from", "effective_to"
        )
        hit = (
            placements.join(level_splits, on=level, how="inner")
            .filter(in_force_expr())
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
        .agg(pl.col("share").sum().alias("total"))
        .filter(pl.col("total") > Decimal(1))
    )
    if over.height:
        over = over.join(
            applied.join(over.select(keys), on=keys, how="semi", nulls_equal=True)
            .group_by(keys)
            .agg(pl.col("split_id").sort().alias("splits")),
            on=keys,
            how="left",
            nulls_equal=True,
        )
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


# The dimensions a rate can be specific in, most decisive first: an exact usage type beats
# ``*``, then an exact channel beats ``*``, then a territory list beats WW.
SPECIFICITY = {
    "usage type": pl.col("r_usage") != "*",
    "channel": pl.col("r_channel") != "*",
    "territories": pl.col("territories") != "WW",
}


def _specificity() -> pl.Expr:
    weights = [4, 2, 1]
    return sum(
        (e.cast(pl.Int32) * w for e, w in zip(SPECIFICITY.values(), weights, strict=True)),
        pl.lit(0, pl.Int32),
    )


RATE_KEYS = ["contract_id", "usage_type", "channel", "as_of", "class_id"]


def rate_candidates(
    needs: pl.DataFrame, rates: pl.DataFrame, members: pl.DataFrame
) -> pl.DataFrame:
    """Every rate that matches each need (contract_id, usage_type, channel, as_of, class_id):
    in force, of the need's usage type or ``*``, channel or ``*``, territory set containing the
    need's class. Each need's candidates come in the order the rule ranks them (most specific,
    then latest, first), with their ``r_usage``, ``r_channel``, ``territories`` and ``_spec``."""
    r = rates.select(
        "rate_id",
        "contract_id",
        pl.col("usage_type").alias("r_usage"),
        pl.col("channel").alias("r_channel"),
        "territories",
        "effective_from",
        "effective_to",
    )
    return (
        needs.join(r, on="contract_id", how="inner")
        .filter(
            in_force_expr()
            & ((pl.col("r_usage") == "*") | (pl.col("r_usage") == pl.col("usage_type")))
            & ((pl.col("r_channel") == "*") | (pl.col("r_channel") == pl.col("channel")))
        )
        .join(members, on=["class_id", "territories"], how="semi")
        .with_columns(_specificity().alias("_spec"))
        # most specific, then latest, first: each need's first candidate is its rate
        .sort(["_spec", "effective_from", "rate_id"], descending=True)
    )


def resolve_rates(needs: pl.DataFrame, rates: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """needs (contract_id, usage_type, channel, as_of, class_id) -> + rate_id, slot."""
    keys = RATE_KEYS
    extra = [c for c in needs.columns if c not in keys]  # carried along (e.g. a packed key)
    cand = (
        rate_candidates(needs, rates, members)
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
        .select(*keys, *extra, "rate_id", "slot")
    )
    # cand has one row per distinct need that has a rate: if it has as many rows as needs,
    # none is missing (the anti-join is only needed when some may be)
    missing = needs.clear()
    if cand.height != needs.height:
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
    ``tiers`` ([{"from_units": N, "rate": "0.22"}, ...]), to 12 places: ``blended_fraction``
    rounded, for display (royalties are computed from the exact fraction)."""
    total, count = blended_fraction(base, tiers, prior, units)
    return (total / count).quantize(Decimal("1e-12"))


def blended_fraction(
    base: Decimal, tiers: list[dict[str, Any]], prior: int, units: int
) -> tuple[Decimal, int]:
    """The period's rate as an exact fraction (numerator, units): each unit at the rate of
    the tier it falls in, the numerator their sum (exact: rates x whole units), the rate
    their unit-weighted average. Returns (negative ``units``) take the tracker back from
    ``prior`` to ``prior + units``, and are priced at the tiers of those positions, the
    rates the units were sold at. With no units in the period the rate in force at
    ``prior`` applies (over 1)."""
    steps = sorted((int(t["from_units"]), Decimal(str(t["rate"]))) for t in tiers)
    bounds = [(0, base), *steps]

    def rate_at(position: int) -> Decimal:
        current = base
        for start, r in bounds:
            if position >= start:
                current = r
        return current

    if units == 0:
        return rate_at(prior), 1
    if units < 0:
        return blended_fraction(base, tiers, prior + units, -units)
    total = Decimal(0)
    for i, (start, r) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else None
        # The first tier reaches down without limit: after returns the tracker can be
        # negative, and those units are priced at the base rate like any other.
        lo = max(start, prior) if i else prior
        hi = prior + units if end is None else min(end, prior + units)
        if hi > lo:
            total += r * (hi - lo)
    return total, units


@dataclass
class Earnings:
    """What ``compute_earnings`` returns."""

    royalties: pl.DataFrame  # one row per aggregate x applying split (accounting currency)
    matched: pl.DataFrame  # the matched aggregates' total per currency (amount, lines)
    suspense: pl.DataFrame
    slots: pl.DataFrame  # per rate: slot, prior units, period units, blended rate
    unsplit: pl.DataFrame  # matched aggregates no split applied to, per currency
    read: pl.DataFrame  # every line of the period, summed per currency (for reconciliation)
    # per contract x month x rate: what the exact royalties are computed from (BASES_SCHEMA)
    bases: pl.DataFrame


def merge_earnings(parts: list[Earnings]) -> Earnings:
    """The earnings of a run computed in payee buckets (``compute_earnings`` with disjoint
    ``contract_ids`` covering every contract): royalties and slots side by side; the period
    totals, which every bucket computes in full, taken once after checking they agree."""
    if not parts:
        raise EngineError("no_buckets", "a partitioned run needs at least one bucket")
    first = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        for name in ("matched", "suspense", "unsplit", "read"):
            a, b = getattr(first, name), getattr(part, name)
            if not a.sort(pl.all()).equals(b.sort(pl.all())):
                raise EngineError(
                    "buckets_disagree",
                    f"bucket {i} read a different period than bucket 0 ({name} differs): "
                    "the lake changed while the run was partitioned; run it again",
                )
    return Earnings(
        royalties=pl.concat([p.royalties for p in parts], how="vertical"),
        matched=first.matched,
        suspense=first.suspense,
        slots=pl.concat([p.slots for p in parts], how="vertical"),
        unsplit=first.unsplit,
        read=first.read,
        bases=pl.concat([p.bases for p in parts], how="vertical"),
    )


def payee_buckets(terms: Terms, buckets: int) -> list[list[int]]:
    """The contracts of each payee bucket (payee id modulo ``buckets``): a payee's contracts
    stay together, so cross-collateralisation pools never straddle two buckets."""
    if buckets < 1:
        raise EngineError("buckets_invalid", f"buckets must be at least 1, not {buckets}")
    out: list[list[int]] = [[] for _ in range(buckets)]
    for contract_id, payee_id in (
        terms.contracts.select("contract_id", "payee_id").sort("contract_id").rows()
    ):
        out[payee_id % buckets].append(contract_id)
    return out


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
        found = self._find(base, quote, month)
        if found is None:
            self.missing.add((base, quote, month))
            return Decimal(0)
        return found

    def _find(self, base: str, quote: str, month: str) -> Decimal | None:
        if base == quote:
            return Decimal(1)
        direct = self._rates.get((base, quote, month))
        if direct is not None:
            return direct
        return inverse_rate(self._rates.get((quote, base, month)))

    def into(self, base: str, anchor: str, month: str) -> Decimal:
        """The rate from ``base`` into ``anchor`` that converting back out of ``anchor``
        (``rate(anchor, base)``) undoes: its inverse, whichever direction the table stores.
        A per-unit royalty goes from the contract currency into the accounting currency and
        back; with two independently stored directions (USD->GBP 0.79, GBP->USD 1.26) the
        round trip would lose money (USD 20.00 -> GBP 15.80 -> USD 19.91)."""
        out = self._find(anchor, base, month)
        value = out if base == anchor else inverse_rate(out)
        if not value:
            self.missing.add((base, anchor, month))
            return Decimal(0)
        return value

    def raise_missing(self) -> None:
        if self.missing:
            raise EngineError(
                "fx_missing",
                "FX rate missing for "
                + ", ".join(f"{b}->{q} in {m}" for b, q, m in sorted(self.missing))
                + "; import the rates (tunemantra fx import) and run again",
                [{"base": b, "quote": q, "period": m} for b, q, m in sorted(self.missing)],
            )


def _codes(frame: pl.DataFrame, column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replace a categorical column by small integer codes; return the code -> value table."""
    coded = frame.with_columns(pl.col(column).to_physical().cast(pl.Int64).alias(f"{column}_c"))
    values = frame.select(pl.col(column).unique())
    table = values.select(
        pl.col(column).to_physical().cast(pl.Int64).alias(f"{column}_c"),
        pl.col(column).cast(pl.String),
    )
    return coded.drop(column), table


STATEMENT_KEYS = ["contract_id", "payee_id", "release_id", "usage_type_c", "reporting_period_c"]
PACK_LIMIT = 2**62
PACKABLE = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


@dataclass
class _Pack:
    """Integer key columns as one Int64 key, exactly: a mixed-radix number whose digits are
    each column's value minus its minimum plus one (0 for null), when the product of the
    columns' ranges fits in 62 bits. Nulls compare equal, as in a join with
    ``nulls_equal=True`` or a group-by."""

    columns: list[tuple[str, int, int]]  # name, minimum, radix (values + 1 for null)

    @classmethod
    def of(cls, names: list[str], *frames: pl.DataFrame) -> _Pack | None:
        columns = []
        total = 1
        for name in names:
            frame = next(f for f in frames if name in f.columns)
            if frame.schema[name] not in PACKABLE:
                return None
            lo, hi = frame.select(
                pl.col(name).min().alias("lo"), pl.col(name).max().alias("hi")
            ).row(0)
            lo = 0 if lo is None else int(lo)
            hi = lo if hi is None else int(hi)
            radix = hi - lo + 2
            total *= radix
            if total >= PACK_LIMIT or lo <= -PACK_LIMIT or hi >= PACK_LIMIT:
                return None
            columns.append((name, lo, radix))
        return cls(columns)

    def key(self, alias: str) -> pl.Expr:
        key = pl.lit(0, dtype=pl.Int64)
        for name, lo, radix in self.columns:
            digit = (pl.col(name).cast(pl.Int64) - (lo - 1)).fill_null(0)
            key = key * radix + digit
        return key.alias(alias)

    def unpack(self, alias: str, schema: pl.Schema) -> list[pl.Expr]:
        """The columns back from the key (with their dtypes in ``schema``)."""
        out = []
        stride = 1
        for name, lo, radix in reversed(self.columns):
            digit = (pl.col(alias) // stride) % radix
            out.append(pl.when(digit > 0).then(digit + (lo - 1)).cast(schema[name]).alias(name))
            stride *= radix
        return out[::-1]


MONTHLY_AGGREGATION_LINES = 20_000_000
"""Above this many lines in the period, the aggregation runs one reporting month at a time."""


def _aggregate(
    lines: pl.LazyFrame,
    grain: Grain,
    months: list[str] | None,
    *,
    dates: tuple[dt.date | None, dt.date | None],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``aggregate``'s three frames, streaming, one query at a time (collecting the three
    together would materialise the shared scan: 3.6x the memory, and slower).

    With ``months``, one reporting month at a time, put together: out of core, as a query's
    memory is its group table, which grows with the lines' distinct keys (at 1e9 lines the
    whole half-year in one query peaked at 18 GiB; by month 8.6 GiB, and faster). The matched
    and suspense aggregates are keyed by the reporting period, so the months' groups are
    disjoint and simply stacked; the per-currency read totals are added up. The result is the
    same either way (tested); below ``MONTHLY_AGGREGATION_LINES`` one query is quicker."""
    parts = [lines] if months is None else [
        lines.filter(pl.col("reporting_period") == month) for month in months
    ]  # fmt: skip
    aggs, suspenses, reads = [], [], []
    for part in parts:
        queries = aggregate(part, grain, dates=dates)
        agg, suspense, read = (q.collect(engine="streaming") for q in queries)
        aggs.append(agg)
        suspenses.append(suspense)
        reads.append(read)
    if len(parts) == 1:
        return aggs[0], suspenses[0], reads[0]
    read = (
        pl.concat(reads)
        .group_by("currency")
        .agg(pl.col("amount").sum().cast(EXACT), pl.col("lines").sum(), pl.col("unconverted").sum())
        .sort("currency", nulls_last=True)
    )
    return pl.concat(aggs), pl.concat(suspenses), read


def compute_earnings(
    lines: pl.LazyFrame,
    terms: Terms,
    *,
    period: Period,
    accounting_currency: str,
    prior_units: dict[str, int],
    contract_ids: list[int] | None = None,
) -> Earnings:
    """The period's royalties. With ``contract_ids`` only those contracts' royalties (and
    escalation slots) are computed — one payee bucket of a partitioned run; splits are still
    resolved against every split (a track-level split of a contract outside the bucket still
    replaces the release-level ones), and the matched, suspense, unsplit and read totals
    are the whole period's, so ``merge_earnings`` of all buckets equals the unpartitioned
    result."""
    _check_receipt_rates(terms)
    grain = Grain.of(terms)
    in_period = period_lines(lines, period)
    usage_date = pl.coalesce(pl.col("usage_end"), pl.col("usage_start"))
    lo, hi, n_lines = (
        in_period.select(
            usage_date.min().alias("lo"), usage_date.max().alias("hi"), pl.len().alias("n")
        )
        .collect()
        .row(0)
    )
    by_month = n_lines > MONTHLY_AGGREGATION_LINES and len(period.months) > 1
    months = period.months if by_month else None
    agg, suspense, read = _aggregate(in_period, grain, months, dates=(lo, hi))
    if read.height and int(read["unconverted"].sum()):
        raise EngineError(
            "unconverted_lines",
            f"{int(read['unconverted'].sum())} matched line(s) of the period have no converted "
            "amount (no FX rate when they were ingested); import the rates and run "
            "`tunemantra rematch`",
        )
    other = sorted(set(read["currency"].drop_nulls().to_list()) - {accounting_currency})
    if other:
        raise EngineError(
            "currency_mismatch",
            f"lines converted to {', '.join(other)}, not the accounting currency "
            f"{accounting_currency}; re-ingest them",
            [{"currency": c} for c in other],
        )
    read = read.drop("unconverted")
    # From here on every frame is sized by the catalogue and the terms, not by the lines:
    # the aggregates carry integer codes; strings and dates live in small code tables.
    p = _segments(agg, grain)
    decode = {}
    for column in ("reporting_period", "usage_type", "channel"):
        p, decode[column] = _codes(p, column)
    segments = grain.segment_table()
    place = ["track_id", "release_id", "segment", "class_id"]
    # Multi-column joins and group-bys over millions of rows are done on one packed Int64
    # key where the columns' ranges allow it (``_Pack``), else on the columns themselves.
    on_place = _Pack.of(place, p)
    if on_place is not None:
        p = p.with_columns(on_place.key("_place"))
    place_on = ["_place"] if on_place is not None else place
    placements = (
        p.select(*dict.fromkeys([*place, *place_on]))
        .unique(subset=place_on)
        .select(place)
        .join(segments, on="segment", how="left")
    )
    applied = resolve_splits(placements, terms.splits, grain.members)
    if on_place is not None:
        applied = applied.with_columns(on_place.key("_place"))
    unsplit = (
        p.join(applied.select(place_on).unique(), on=place_on, how="anti", nulls_equal=True)
        .select(pl.lit(accounting_currency).alias("currency"), "amount", "lines")
        .group_by("currency")
        .agg(pl.col("amount").sum().cast(EXACT), pl.col("lines").sum())
    )
    if contract_ids is not None:
        applied = applied.filter(pl.col("contract_id").is_in(contract_ids))
    # An aggregate's units count once per contract, however many of its splits that
    # contract has: only on one of the contract's splits of the placement.
    applied = applied.with_columns(
        pl.struct(*place_on, "contract_id").is_first_distinct().alias("_first")
    )
    plan_keys = [
        "contract_id",
        "usage_type_c",
        "channel_c",
        "segment",
        "class_id",
        "reporting_period_c",
    ]
    k1c = p.select(
        *place_on,
        *(c for c in [*plan_keys, "release_id"] if c != "contract_id" and c not in place_on),
        "amount",
        "quantity",
    ).join(
        applied.select(*place_on, "payee_id", "contract_id", "share", "_first"),
        on=place_on,
        how="inner",
        nulls_equal=True,
    )
    on_plan = _Pack.of(plan_keys, applied, p)
    # The matched total per currency (what reconciliation needs), then the aggregates go:
    # from here on the fan-out (aggregates x splits) is the largest frame, and memory at
    # 100M lines peaks while it is held.
    matched = p.group_by(pl.lit(accounting_currency).alias("currency")).agg(
        pl.col("amount").sum().cast(EXACT), pl.col("lines").sum()
    )
    del p
    if on_plan is not None:
        k1c = k1c.with_columns(on_plan.key("_plan"))
    plan_on = ["_plan"] if on_plan is not None else plan_keys
    units = (
        k1c.lazy()
        .filter(pl.col("_first"))
        .group_by(plan_on)
        .agg(pl.col("quantity").sum().alias("units"))
        .collect()
    )
    fanned = k1c.schema
    # Only what the royalties and the statement grain read is kept.
    k1c = k1c.select(*dict.fromkeys([*plan_on, *STATEMENT_KEYS]), "amount", "quantity", "share")
    if on_plan is not None:
        units = units.select(*on_plan.unpack("_plan", fanned), "units")
    rate_keys = ["contract_id", "usage_type", "channel", "as_of", "class_id"]
    need_keys = ["contract_id", "usage_type_c", "channel_c", "segment", "class_id"]
    on_need = _Pack.of(need_keys, units)
    if on_need is not None:
        units = units.with_columns(on_need.key("_need"))
    need_on = ["_need"] if on_need is not None else rate_keys
    plan = (
        units.join(segments, on="segment", how="left")
        .join(decode["usage_type"], on="usage_type_c", how="left")
        .join(decode["channel"], on="channel_c", how="left")
        .join(decode["reporting_period"], on="reporting_period_c", how="left")
    )
    if on_need is not None:
        needs = (
            units.select(*need_keys, "_need")
            .unique(subset="_need")
            .join(segments, on="segment", how="left")
            .join(decode["usage_type"], on="usage_type_c", how="left")
            .join(decode["channel"], on="channel_c", how="left")
            .select(*rate_keys, "_need")
        )
    else:
        needs = plan.select(rate_keys).unique()
    chosen = resolve_rates(needs, terms.rates, grain.members)
    plan = plan.join(chosen.select(*need_on, "rate_id", "slot"), on=need_on, how="left")
    per_rate = (
        plan.group_by("rate_id", "slot")
        .agg(pl.col("units").sum())
        .join(terms.rates.select("rate_id", "rate", "tiers", "effective_from"), on="rate_id")
        .sort("slot", "effective_from", "rate_id")
    )
    slots = _escalate(per_rate, prior_units)
    fx = FxTable(terms.fx)
    plan = _factors(plan, slots, terms, grain.members, fx, accounting_currency)
    fx.raise_missing()
    if on_plan is not None:
        plan = plan.with_columns(on_plan.key("_plan"))
    bases = _bases(k1c, plan, plan_on, slots)
    royalties = _royalties(
        k1c.lazy().join(
            plan.lazy().select(*plan_on, "effective_rate", "net", "unit_value"),
            on=plan_on,
            how="left",
        )
    )
    # The statement grain: per contract, release, usage type and month.
    on_statement = _Pack.of(STATEMENT_KEYS, k1c)
    if on_statement is not None:
        royalties = royalties.with_columns(on_statement.key("_statement"))
    statement = (
        royalties.group_by(["_statement"] if on_statement is not None else STATEMENT_KEYS)
        .agg(
            pl.col("royalty").sum().cast(EXACT),
            pl.col("amount").sum().cast(EXACT).alias("revenue_share_base"),
            pl.col("quantity").sum(),
        )
        .collect()
    )
    fanned = k1c.schema
    del k1c, plan
    if on_statement is not None:
        statement = statement.select(
            *on_statement.unpack("_statement", fanned),
            "royalty",
            "revenue_share_base",
            "quantity",
        )
    statement = (
        statement.join(decode["usage_type"], on="usage_type_c", how="left")
        .join(decode["reporting_period"], on="reporting_period_c", how="left")
        .select(
            "contract_id",
            "payee_id",
            "release_id",
            "royalty",
            "revenue_share_base",
            "quantity",
            "usage_type",
            "reporting_period",
        )
    )
    return Earnings(
        royalties=statement,
        matched=matched,
        suspense=suspense,
        slots=slots.drop("rate_num", "rate_den"),
        unsplit=unsplit,
        read=read,
        bases=bases,
    )


BASES_SCHEMA: dict[str, pl.DataType] = {
    "contract_id": pl.Int64(),
    "reporting_period": pl.String(),
    "rate_id": pl.Int64(),
    "net": RATE,
    "unit_value": EXACT,
    "rate_num": EXACT,
    "rate_den": pl.Int64(),
    "share_amount": EXACT,
    "share_units": EXACT,
}


def _bases(
    k1c: pl.DataFrame, plan: pl.DataFrame, plan_on: list[str], slots: pl.DataFrame
) -> pl.DataFrame:
    """Per contract, reporting month and rate (and the plan's factors): the shared amount
    (amount x share) and shared units (quantity x share) summed, with the rate as an exact
    fraction; ``exact_royalties`` turns them into each contract's exact royalty."""
    shared = (
        k1c.lazy()
        .group_by(plan_on)
        .agg(
            (pl.col("amount") * pl.col("share"))
            .cast(EXACT)
            .sum()
            .cast(EXACT)
            .alias("share_amount"),
            (pl.col("quantity").cast(EXACT) * pl.col("share"))
            .cast(EXACT)
            .sum()
            .cast(EXACT)
            .alias("share_units"),
        )
        .collect()
    )
    keys = [c for c in BASES_SCHEMA if c not in ("share_amount", "share_units")]
    return (
        plan.join(shared, on=plan_on, how="inner")
        .join(slots.select("rate_id", "rate_num", "rate_den"), on="rate_id", how="left")
        .group_by(keys)
        .agg(pl.col("share_amount").sum().cast(EXACT), pl.col("share_units").sum().cast(EXACT))
        .select(list(BASES_SCHEMA))
        .cast(BASES_SCHEMA)  # type: ignore[arg-type]
        .sort(keys, nulls_last=True)
    )


def exact_royalties(bases: pl.DataFrame) -> dict[tuple[int, str], Fraction]:
    """Each contract's royalty per reporting month (accounting currency), exact: on
    receipts shared amount x net x rate, per unit or PPD shared units x unit value x rate,
    the rate as its exact fraction (an escalation's blend, 260 / 1200, has no finite
    decimal form). Rounded once, to the cent, by ``money.cents``."""
    out: dict[tuple[int, str], Fraction] = {}
    for r in bases.iter_rows(named=True):
        rate = Fraction(to_decimal(r["rate_num"])) / int(r["rate_den"])
        if r["net"] is not None:
            base = Fraction(to_decimal(r["share_amount"])) * Fraction(to_decimal(r["net"]))
        else:
            base = Fraction(to_decimal(r["share_units"])) * Fraction(to_decimal(r["unit_value"]))
        key = (int(r["contract_id"]), str(r["reporting_period"]))
        out[key] = out.get(key, Fraction(0)) + base * rate
    return out


def _check_receipt_rates(terms: Terms) -> None:
    """A rate on receipts is a share of what was received: between 0 and 1, tiers included.
    Anything else (1.5 for 0.15) would pay out more than came in, and the run would still
    reconcile, the label's retained share going negative."""
    receipts = terms.contracts.filter(pl.col("basis").is_in(["gross_receipts", "net_receipts"]))[
        "contract_id"
    ]
    bad = []
    for row in (
        terms.rates.filter(pl.col("contract_id").is_in(receipts.implode()))
        .sort("rate_id")
        .iter_rows(named=True)
    ):
        values = [to_decimal(row["rate"])] + [
            Decimal(str(t["rate"])) for t in json.loads(row["tiers"] or "[]")
        ]
        wrong = [v for v in values if not Decimal(0) <= v <= Decimal(1)]
        if wrong:
            bad.append(
                {
                    "rate_id": row["rate_id"],
                    "contract_id": row["contract_id"],
                    "rate": str(wrong[0]),
                }
            )
    if bad:
        raise EngineError(
            "rate_over_100_percent",
            f"{len(bad)} rate(s) on receipts are not between 0 and 1 (a rate of 0.15 is 15%): "
            + ", ".join(f"rate {b['rate_id']} = {b['rate']}" for b in bad[:20]),
            bad,
        )


def _segments(agg: pl.DataFrame, grain: Grain) -> pl.DataFrame:
    """Lines without a usage date take their reporting month's last day."""
    if not agg.filter(pl.col("segment").is_null()).height:
        return agg
    bounds = pl.Series("b", grain.boundaries, dtype=pl.Date)
    month_end = pl.col("reporting_period").cast(pl.String).str.to_date("%Y-%m").dt.month_end()
    keys = [c for c in agg.columns if c not in ("amount", "quantity", "lines")]
    return (
        agg.with_columns(
            pl.when(pl.col("segment").is_null())
            .then(pl.lit(bounds).search_sorted(month_end, side="right").cast(pl.Int32))
            .otherwise(pl.col("segment"))
            .alias("segment")
        )
        .group_by(keys)
        .agg(pl.col("amount").sum().cast(EXACT), pl.col("quantity").sum(), pl.col("lines").sum())
    )


def _escalate(per_rate: pl.DataFrame, prior_units: dict[str, int]) -> pl.DataFrame:
    """Each rate's effective rate for the period. Rates without tiers keep their rate (the
    common case, done column-wise); tiered ones are priced unit by unit in
    ``blended_fraction``, in slot order, the tracker carried from the previous period and
    between the rates of a slot (a renegotiated rate continues the count). ``rate_num`` /
    ``rate_den`` is the exact rate (``effective_rate`` is it to 12 places)."""
    schema = {
        "rate_id": pl.Int64,
        "slot": pl.String,
        "prior_units": pl.Int64,
        "units": pl.Int64,
        "base_rate": RATE,
        "effective_rate": RATE,
        "rate_num": EXACT,
        "rate_den": pl.Int64,
    }
    frame = per_rate.with_columns(
        pl.col("tiers").fill_null("[]").is_in(["[]", ""]).alias("_flat"),
        pl.col("rate").cast(RATE).alias("base_rate"),
    )
    flat_slots = frame.group_by("slot").agg(pl.col("_flat").all()).filter(pl.col("_flat"))
    flat = frame.join(flat_slots.select("slot"), on="slot", how="semi")
    prior = pl.DataFrame(
        list(prior_units.items()), schema={"slot": pl.String, "_prior": pl.Int64}, orient="row"
    )
    flat = (
        flat.join(prior, on="slot", how="left")
        .with_columns(
            (
                pl.col("_prior").fill_null(0)
                + pl.col("units").cum_sum().over("slot", order_by=["effective_from", "rate_id"])
                - pl.col("units")
            ).alias("prior_units"),
            pl.col("base_rate").alias("effective_rate"),
            pl.col("base_rate").cast(EXACT).alias("rate_num"),
            pl.lit(1, dtype=pl.Int64).alias("rate_den"),
        )
        .select(list(schema))
    )
    rows = []
    running = dict(prior_units)
    tiered = frame.join(flat_slots.select("slot"), on="slot", how="anti")
    for row in tiered.sort("slot", "effective_from", "rate_id").iter_rows(named=True):
        before = running.get(row["slot"], 0)
        base = to_decimal(row["rate"])
        tiers = json.loads(row["tiers"] or "[]")
        running[row["slot"]] = before + int(row["units"])
        num, den = blended_fraction(base, tiers, before, int(row["units"]))
        rows.append(
            (
                row["rate_id"],
                row["slot"],
                before,
                int(row["units"]),
                base,
                (num / den).quantize(Decimal("1e-12")),
                num,
                den,
            )
        )
    return pl.concat(
        [flat.cast(schema), pl.DataFrame(rows, schema=schema, orient="row")]  # type: ignore[arg-type]
    ).sort("slot", "rate_id")


def _factors(
    k1c: pl.DataFrame,
    slots: pl.DataFrame,
    terms: Terms,
    members: pl.DataFrame,
    fx: FxTable,
    acct: str,
) -> pl.DataFrame:
    """Per (contract, usage type, channel, date, class, month): the multipliers that turn an
    aggregate's amount and quantity into a split's royalty:
    ``amount x share x rate x net`` + ``quantity x share x rate x unit``."""
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
        unit_rows.append(("per_unit", cur, month, None, fx.into(cur, acct, month)))
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
    return f.with_columns(
        pl.when(receipts).then(net.otherwise(one)).otherwise(None).cast(RATE).alias("net"),
        pl.when(pl.col("basis") == "per_unit")
        .then(pl.col("fx_unit"))
        .when(pl.col("basis") == "ppd")
        .then(pl.col("ppd_unit"))
        .otherwise(None)
        .cast(EXACT)
        .alias("unit_value"),
    ).select(*k1c.columns, "basis", "effective_rate", "net", "unit_value")


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
            if not in_force(p["effective_from"], p["effective_to"], as_of):
                continue
            if p["usage_type"] not in (usage, "*"):
                continue
            if (class_id, p["territories"]) not in member_of:
                continue
            key = (p["usage_type"] != "*", p["territories"] != "WW", p["effective_from"])
            if best is None or key > best[0]:
                best = (key, p)
        if best is None:
            continue
        price = best[1]
        unit = (to_decimal(price["price"]) * fx.into(price["currency"], acct, month)).quantize(
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


def _royalties(factors: Frame) -> Frame:
    """Each aggregate x each split that applies to it, with its royalty (12 places)."""
    share_amount = (pl.col("amount") * pl.col("share")).cast(EXACT)
    receipts = ((share_amount * pl.col("effective_rate")).cast(EXACT) * pl.col("net")).cast(EXACT)
    share_units = (pl.col("quantity").cast(EXACT) * pl.col("share")).cast(EXACT)
    units = ((share_units * pl.col("effective_rate")).cast(EXACT) * pl.col("unit_value")).cast(
        EXACT
    )
    return factors.with_columns(
        pl.when(pl.col("net").is_not_null())
        .then(receipts)
        .otherwise(units)
        .cast(EXACT)
        .alias("royalty")
    )
