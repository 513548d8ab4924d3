"""Currency conversion by the organisation's policy, with the rate and its source on each line.

Policy ``period_average``: a line in currency C for reporting period P converts to the target
currency at the rate (C -> target, P) from the rates table; else, as central banks publish
their own currency as the base (1 EUR = 1.08 USD), at the inverse of (target -> C, P),
rounded half-even to 12 places exactly as the royalty run's ``FxTable`` takes an inverse, its
source marked ``(inverse of target->C)``. Same currency: rate 1, source ``identity``.
No rate: ``converted_amount`` stays null and ``fx_source`` is null, so the line is visible
as unconverted rather than guessed: the royalty run refuses a matched line without a rate,
and counts an unmatched one in suspense (``suspense_unconverted_lines``) until its rate is
imported and ``rematch`` converts it.
Converted amounts keep 12 decimal places (Polars rounds half to even at the 12th place,
far below a cent); rounding to cents happens once, on statements.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from schemas.revenue import AMOUNT

RATE = pl.Decimal(38, 12)
PLACES = Decimal("1e-12")


def inverse_rate(rate: Decimal | None) -> Decimal | None:
    """1 / ``rate``, rounded half-even to 12 places: how both ingestion and the royalty run
    read a rate stored the other way round. None when there is no rate, or when the inverse
    rounds to 0 (a rate of 2e12 or more): converting at 0 would make the money vanish."""
    if not rate:
        return None
    return (Decimal(1) / rate).quantize(PLACES) or None


def convert(lines: pl.LazyFrame, rates: pl.LazyFrame, *, target: str) -> pl.LazyFrame:
    """``lines`` (amount, currency, reporting_period) + fx_rate, fx_source,
    converted_currency, converted_amount. ``rates``: base, quote, period, rate, source
    (one rate per base, quote and period).

    The rate lookup joins only the two key columns and puts its result beside the lines
    (a join would otherwise gather every column of the wide revenue lines)."""
    r = _rates_into(rates, target)
    same = pl.col("currency") == target
    looked_up = (
        lines.select("currency", "reporting_period", "amount")
        .join(
            r.unique(["currency", "reporting_period"], keep="first", maintain_order=True),
            on=["currency", "reporting_period"],
            how="left",
            maintain_order="left",
        )
        .select(
            pl.when(same).then(pl.lit(1).cast(RATE)).otherwise(pl.col("_rate")).alias("fx_rate"),
            pl.when(same).then(pl.lit("identity")).otherwise(pl.col("_source")).alias("fx_source"),
            pl.lit(target).alias("converted_currency"),
            pl.col("amount"),
        )
        .select(
            pl.col("fx_rate", "fx_source", "converted_currency"),
            (pl.col("amount") * pl.col("fx_rate")).round(12).cast(AMOUNT).alias("converted_amount"),
        )
    )
    base = lines.drop(
        ["fx_rate", "fx_source", "converted_currency", "converted_amount"], strict=False
    )
    return pl.concat([base, looked_up], how="horizontal")


def _rates_into(rates: pl.LazyFrame, target: str) -> pl.LazyFrame:
    """(currency, reporting_period, _rate, _source) into ``target``: the direct rates, then
    the inverse of a rate out of ``target`` where no direct one exists. The table is small
    (currencies x months): inverses are computed with Python's ``Decimal``, as the run's
    ``FxTable`` does, so ingestion and the run agree to the last place."""
    direct = rates.filter(pl.col("quote") == target).select(
        pl.col("base").alias("currency"),
        pl.col("period").alias("reporting_period"),
        pl.col("rate").cast(RATE).alias("_rate"),
        pl.col("source").alias("_source"),
    )
    out_of = rates.filter((pl.col("base") == target) & (pl.col("quote") != target)).collect()
    if out_of.is_empty():
        return direct
    inverse = pl.DataFrame(
        [
            (r["quote"], r["period"], inv, f"{r['source']} (inverse of {target}->{r['quote']})")
            for r in out_of.iter_rows(named=True)
            # no usable inverse: the line stays unconverted
            if (inv := inverse_rate(r["rate"])) is not None
        ],
        schema={
            "currency": pl.String,
            "reporting_period": pl.String,
            "_rate": RATE,
            "_source": pl.String,
        },
        orient="row",
    ).lazy()
    return pl.concat(
        [direct, inverse.join(direct, on=["currency", "reporting_period"], how="anti")]
    )
