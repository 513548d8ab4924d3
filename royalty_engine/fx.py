"""Currency conversion by the organisation's policy, with the rate and its source on each line.

Policy ``period_average``: a line in currency C for reporting period P converts to the target
currency at the rate (C -> target, P) from the rates table. Same currency: rate 1, source
``identity``. No rate: ``converted_amount`` stays null and ``fx_source`` is null, so the
line is visible as unconverted rather than guessed: the royalty run refuses a matched
line without a rate, and counts an unmatched one in suspense (``suspense_unconverted_lines``)
until its rate is imported and ``rematch`` converts it.
Converted amounts keep 12 decimal places (Polars rounds half to even at the 12th place,
far below a cent); rounding to cents happens once, on statements.
"""

from __future__ import annotations

import polars as pl

from schemas.revenue import AMOUNT

RATE = pl.Decimal(38, 12)


def convert(lines: pl.LazyFrame, rates: pl.LazyFrame, *, target: str) -> pl.LazyFrame:
    """``lines`` (amount, currency, reporting_period) + fx_rate, fx_source,
    converted_currency, converted_amount. ``rates``: base, quote, period, rate, source
    (one rate per base, quote and period).

    The rate lookup joins only the two key columns and puts its result beside the lines
    (a join would otherwise gather every column of the wide revenue lines)."""
    r = rates.filter(pl.col("quote") == target).select(
        pl.col("base").alias("currency"),
        pl.col("period").alias("reporting_period"),
        pl.col("rate").cast(RATE).alias("_rate"),
        pl.col("source").alias("_source"),
    )
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
