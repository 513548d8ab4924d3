"""The canonical revenue line: what every report layout is normalised into.

Two stages share one column vocabulary:

* ``PARSED``: what a parser yields for one file (one row per sales/usage line), before
  matching and currency conversion. Parsers fill what their layout has and leave the rest null.
* ``CANONICAL``: ``PARSED`` plus the organisation, file, matching and FX columns; this is what
  is written to the Parquet lake.

Money is ``Decimal(38, 12)`` (never float) with ``currency`` beside it; ``quantity`` is an
integer count of units (streams, downloads, views, creations).
"""

from __future__ import annotations

import polars as pl

AMOUNT = pl.Decimal(38, 12)

PARSED: dict[str, pl.DataType] = {
    "line_no": pl.Int64(),  # 1-based line (record) number in the decompressed file
    "raw_hash": pl.String(),  # sha256 hex of the raw line: the line's identity
    "usage_start": pl.Date(),
    "usage_end": pl.Date(),
    "territory": pl.String(),  # ISO 3166-1 alpha-2
    "isrc": pl.String(),
    "upc": pl.String(),
    "dsp_resource_id": pl.String(),
    "dsp_release_id": pl.String(),
    "proprietary_id": pl.String(),  # the label's own id as reported (custom id, vendor id)
    "title": pl.String(),
    "artist": pl.String(),
    "service": pl.String(),  # DSP / service name as reported
    "usage_type": pl.String(),  # stream, download, ugc, creation, ...
    "commercial_model": pl.String(),  # subscription, ad_supported, purchase, ...
    "quantity": pl.Int64(),
    "amount": AMOUNT,
    "currency": pl.String(),  # ISO 4217
    "gross_net": pl.String(),  # "gross" | "net"
    "adjustment_type": pl.String(),  # YouTube-style adjustments (Backpay, ...), else null
}

CANONICAL: dict[str, pl.DataType] = {
    "org_id": pl.Int64(),
    "source": pl.String(),  # format name, e.g. "apple", "dsr"
    "file_id": pl.Int64(),  # ingestion ledger id
    "file_sha256": pl.String(),
    # the report inside a delivered archive (a zip's member name; null for a plain file):
    # a zip's members each number their lines from 1, so a line is (file, member, line_no)
    "member": pl.String(),
    "reporting_period": pl.String(),  # YYYY-MM
    **PARSED,
    "track_id": pl.Int64(),
    "release_id": pl.Int64(),
    "match_method": pl.String(),  # isrc, isrc_alias, upc, ...; null = suspense
    "suspense_reason": pl.String(),  # why an unmatched line is in suspense
    "fx_rate": pl.Decimal(38, 12),
    "fx_source": pl.String(),
    "converted_currency": pl.String(),
    "converted_amount": AMOUNT,
}

USAGE_TYPES = ("stream", "download", "ugc", "creation", "physical", "sync", "performance", "other")


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(frame: pl.DataFrame | pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Select exactly ``schema``'s columns in order, adding missing ones as typed nulls."""
    lf = frame.lazy()
    have = set(lf.collect_schema().names())
    return lf.select(
        [
            (pl.col(name) if name in have else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )
