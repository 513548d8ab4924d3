"""Line-level statement detail for some contracts of a run, derived on demand.

A run keeps exact balances and summaries (by release, usage type and month); the detail a
payee's statement shows — earnings by track, source and territory — is derived here from the
period's lines and the run's own snapshot and escalation rates, for just the contracts asked
for. It uses the same rules as the run (``royalty_engine.earnings``), the run's effective
rate per rate (escalation depends on every unit of the period, not only these lines), and is
allocated to the run's rounded earnings per contract, so it always adds up to the statement.
"""

from __future__ import annotations

import polars as pl

from royalty_engine.earnings import (
    FxTable,
    Grain,
    _factors,
    _royalties,
    period_lines,
    resolve_rates,
    resolve_splits,
)
from royalty_engine.engine import allocate_frame
from royalty_engine.periods import Period
from royalty_engine.terms import EngineError, Terms
from schemas.money import EXACT, RATE
from schemas.statement_figures import source_expr

# ``source``: the store that reported the line (its ``service``, else its report format's
# readable name; ``schemas.statement_figures.source_expr``), not the parser id.
DETAIL_KEYS = ["track_id", "release_id", "source", "territory", "usage_type", "reporting_period"]


def contract_detail(
    lines: pl.LazyFrame,
    terms: Terms,
    *,
    period: Period,
    accounting_currency: str,
    slots: pl.DataFrame,
    ledger: pl.DataFrame,
    contract_ids: list[int],
) -> pl.DataFrame:
    """One row per contract x track x source x territory x usage type x month: the
    royalty (exact, in the contract's currency) and its share of the contract's statement
    figure in cents (``amount``; the amounts of a contract add up to its earnings)."""
    wanted = terms.splits.filter(pl.col("contract_id").is_in(contract_ids))
    tracks = wanted["track_id"].drop_nulls().unique().implode()
    releases = wanted["release_id"].drop_nulls().unique().implode()
    grain = Grain.of(terms)
    month_end = pl.col("reporting_period").str.to_date("%Y-%m").dt.month_end()
    usage_date = pl.coalesce(pl.col("usage_end"), pl.col("usage_start"), month_end)
    g = (
        period_lines(lines, period)
        .filter(
            pl.col("match_method").is_not_null()
            & (pl.col("track_id").is_in(tracks) | pl.col("release_id").is_in(releases))
        )
        .with_columns(
            pl.col("territory").fill_null("WW"),
            pl.col("usage_type").fill_null("other"),
            source_expr(),
            pl.col("commercial_model").fill_null("").alias("channel"),
            grain.segment(usage_date, None, None).alias("segment"),
        )
        .group_by(*DETAIL_KEYS, "channel", "segment")
        .agg(
            pl.col("converted_amount").sum().cast(EXACT).alias("amount"),
            pl.col("quantity").fill_null(0).sum().alias("quantity"),
        )
        .collect()
    )
    unknown = grain.classes["ZZ"]
    g = g.with_columns(
        pl.col("territory")
        .replace_strict(grain.classes, default=unknown, return_dtype=pl.Int32)
        .alias("class_id"),
        pl.when(pl.col("track_id").is_in(grain.override_tracks.implode()))
        .then(pl.col("track_id"))
        .alias("track_key"),
    )
    g = g.join(grain.segment_table(), on="segment", how="left")
    placements = g.select(
        pl.col("track_key").alias("track_id"), "release_id", "as_of", "class_id"
    ).unique()
    applied = resolve_splits(placements, terms.splits, grain.members).filter(
        pl.col("contract_id").is_in(contract_ids)
    )
    rows = g.join(
        applied.rename({"track_id": "track_key"}).drop("level"),
        on=["track_key", "release_id", "as_of", "class_id"],
        how="inner",
        nulls_equal=True,
    )
    plan_keys = ["contract_id", "usage_type", "channel", "as_of", "class_id", "reporting_period"]
    plan = rows.select(plan_keys).unique()
    chosen = resolve_rates(
        plan.select("contract_id", "usage_type", "channel", "as_of", "class_id").unique(),
        terms.rates,
        grain.members,
    )
    plan = plan.join(
        chosen, on=["contract_id", "usage_type", "channel", "as_of", "class_id"], how="left"
    )
    missing = plan.join(slots.select("rate_id"), on="rate_id", how="anti")
    if missing.height:
        raise EngineError(
            "detail_mismatch",
            "these lines use rates the run did not: the lines or terms changed since the run",
            missing.select("contract_id", "rate_id").unique().head(20).to_dicts(),
        )
    fx = FxTable(terms.fx)
    plan = _factors(plan, slots, terms, grain.members, fx, accounting_currency)
    fx.raise_missing()
    royalties = _royalties(rows.join(plan.drop("rate_id", "slot"), on=plan_keys, how="left"))
    currency = terms.contracts.select("contract_id", pl.col("currency").alias("_ccy"))
    to_contract = [
        (cid, month, fx.rate(accounting_currency, ccy, month))
        for cid, month, ccy in royalties.select("contract_id", "reporting_period")
        .unique()
        .join(currency, on="contract_id")
        .rows()
    ]
    fx.raise_missing()
    rate = pl.DataFrame(
        to_contract,
        schema={"contract_id": pl.Int64, "reporting_period": pl.String, "_fx": RATE},
        orient="row",
    )
    exact = (
        royalties.join(rate, on=["contract_id", "reporting_period"], how="left")
        .with_columns((pl.col("royalty") * pl.col("_fx")).cast(EXACT).alias("royalty_cc"))
        .group_by("contract_id", "payee_id", *DETAIL_KEYS)
        .agg(pl.col("royalty_cc").sum().cast(EXACT).alias("exact"), pl.col("quantity").sum())
    )
    keyed = exact.with_columns(
        pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("") for c in DETAIL_KEYS], separator="|"
        ).alias("key"),
        pl.lit("detail").alias("dimension"),
    ).join(
        ledger.select("contract_id", "currency", pl.col("earnings").alias("_total")),
        on="contract_id",
        how="inner",
    )
    return (
        allocate_frame(keyed)
        .select("contract_id", "payee_id", "currency", *DETAIL_KEYS, "quantity", "exact", "amount")
        .sort("contract_id", *DETAIL_KEYS, nulls_last=True)
    )
