"""Matching revenue lines to the catalogue, in the documented order:

1. ISRC -> track (and its release); an ISRC alias rule -> track
2. UPC/EAN -> release (a release-level match: no track); a UPC alias rule
3. DSP resource / release ids, then proprietary ids, by remembered rules
4. title + artist, by remembered rules (case-folded)

Identifiers are normalised before comparing, by the rules of ``schemas.identifiers``: ISRCs by
``normalise_isrc`` (upper-case, no spaces, dashes or dots), GTINs by ``gtin_key`` (14 digits, so
UPC-A ``036000291452`` and EAN-13 ``0036000291452`` are one product).
Unmatched lines keep ``match_method`` null: they are suspense, with ``suspense_reason``.
"""

from __future__ import annotations

import polars as pl

from royalty_engine.fx import convert
from schemas.identifiers import gtin_key_expr, is_valid_isrc_expr, normalise_isrc_expr
from schemas.revenue import CANONICAL, conform

MATCH_COLUMNS = ("track_id", "release_id", "match_method", "suspense_reason")
RELEASE_LEVEL = ("upc", "upc_alias", "dsp_release_id")  # methods that match no track


def title_artist_key_expr(title: str = "title", artist: str = "artist") -> pl.Expr:
    """``title|artist``, case-folded; a line with a title and no artist keys as ``title|``
    (so it still reaches suspense, where it can be matched by hand). No title: null."""
    return pl.concat_str(
        [
            pl.col(title).str.to_lowercase().str.strip_chars(),
            pl.col(artist).str.to_lowercase().str.strip_chars().fill_null(""),
        ],
        separator="|",
    )


def dsp_key_expr(column: str, names: list[str]) -> pl.Expr:
    """A DSP's own id, scoped to that DSP: ``service:id`` (the service as reported,
    case-folded; else the report's layout). Spotify's track 1712345601 and a TikTok sound
    with the same digits are different things, so a match made for one never matches the
    other. ``names``: the frame's columns (it may lack ``service`` or ``source``)."""
    have = set(names)
    scopes = [
        *([pl.col("service").str.strip_chars().str.to_lowercase()] if "service" in have else []),
        *([pl.col("source")] if "source" in have else []),
        pl.lit(""),
    ]
    return pl.concat_str([pl.coalesce(scopes), pl.lit(":"), pl.col(column)])


def match_lines(
    lines: pl.LazyFrame,
    tracks: pl.LazyFrame,  # isrc, track_id, release_id
    releases: pl.LazyFrame,  # upc, release_id
    rules: pl.LazyFrame,  # kind, key, track_id, release_id
) -> pl.LazyFrame:
    """``lines`` with ``track_id``, ``release_id``, ``match_method``, ``suspense_reason``.

    The lookups run on a narrow frame of the identifier columns only and their results are
    put beside the lines: a join gathers every column of its left side, and revenue lines are
    wide. Each lookup table is unique by its key, so the narrow frame keeps the lines' rows in
    order. Rule kinds the organisation has no rules of are not joined at all.
    """
    kinds = set(rules.select("kind").unique().collect()["kind"].to_list())
    use_title = "title_artist" in kinds
    names = lines.collect_schema().names()
    ids = lines.select(
        pl.col("isrc", "upc", "dsp_resource_id", "dsp_release_id", "proprietary_id"),
        *([title_artist_key_expr().alias("_title_artist")] if use_title else []),
        *(
            dsp_key_expr(c, names).alias(f"_{c}")
            for c in ("dsp_resource_id", "dsp_release_id")
            if c in kinds
        ),
    )
    t = tracks.select(
        normalise_isrc_expr("isrc").alias("_isrc"),
        pl.col("track_id").cast(pl.Int64).alias("_t_isrc"),
        pl.col("release_id").cast(pl.Int64).alias("_r_isrc"),
    ).unique("_isrc", keep="first", maintain_order=True)
    r = releases.select(
        gtin_key_expr("upc").alias("_upc"), pl.col("release_id").cast(pl.Int64).alias("_r_upc")
    ).unique("_upc", keep="first", maintain_order=True)
    # identifiers are normalised and looked up once per distinct value, then joined to lines
    by_isrc = (
        ids.select(pl.col("isrc").drop_nulls().unique())
        .with_columns(
            normalise_isrc_expr("isrc").alias("_isrc"), is_valid_isrc_expr("isrc").alias("_isrc_ok")
        )
        .join(t, on="_isrc", how="left")
    )
    by_upc = (
        ids.select(pl.col("upc").drop_nulls().unique())
        .with_columns(gtin_key_expr("upc").alias("_upc"))
        .join(r, on="_upc", how="left")
    )
    out = ids.join(by_isrc, on="isrc", how="left", maintain_order="left").join(
        by_upc, on="upc", how="left", maintain_order="left"
    )
    steps: list[tuple[str, str, str]] = [  # (rule kind, line column, method)
        ("isrc", "_isrc", "isrc_alias"),
        ("upc", "_upc", "upc_alias"),
        ("dsp_resource_id", "_dsp_resource_id", "dsp_resource_id"),
        ("dsp_release_id", "_dsp_release_id", "dsp_release_id"),
        ("proprietary_id", "proprietary_id", "proprietary_id"),
        ("title_artist", "_title_artist", "title_artist"),
    ]
    for kind, column, name in steps:
        if kind not in kinds:
            continue
        rule = (
            rules.filter(pl.col("kind") == kind)
            .select(
                pl.col("key").alias(column),
                pl.col("track_id").cast(pl.Int64).alias(f"_t_{name}"),
                pl.col("release_id").cast(pl.Int64).alias(f"_r_{name}"),
            )
            .unique(column, keep="first", maintain_order=True)
        )
        out = out.join(rule, on=column, how="left", maintain_order="left")
    order = [  # precedence: the first that hits wins
        "isrc",
        "isrc_alias",
        "upc",
        "upc_alias",
        "dsp_resource_id",
        "dsp_release_id",
        "proprietary_id",
        "title_artist",
    ]
    joined = {"isrc", "upc", *(name for kind, _, name in steps if kind in kinds)}
    order = [m for m in order if m in joined]
    track_of = {"isrc": "_t_isrc", "upc": None}
    release_of = {"isrc": "_r_isrc", "upc": "_r_upc"}
    hit = {
        m: (pl.col(f"_t_{m}").is_not_null() | pl.col(f"_r_{m}").is_not_null())
        for m in order
        if m not in ("isrc", "upc")
    }
    hit["isrc"] = pl.col("_t_isrc").is_not_null()
    hit["upc"] = pl.col("_r_upc").is_not_null()
    method = pl.lit(None, dtype=pl.String)
    track = pl.lit(None, dtype=pl.Int64)
    release = pl.lit(None, dtype=pl.Int64)
    for m in reversed(order):
        t_col = track_of.get(m, f"_t_{m}")
        r_col = release_of.get(m, f"_r_{m}")
        method = pl.when(hit[m]).then(pl.lit(m)).otherwise(method)
        found = pl.col(t_col) if t_col else pl.lit(None, pl.Int64)
        track = pl.when(hit[m]).then(found).otherwise(track)
        release = pl.when(hit[m]).then(pl.col(r_col)).otherwise(release)
    reason = (
        pl.when(method.is_not_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("isrc").is_not_null() & ~pl.col("_isrc_ok"))
        .then(pl.lit("invalid_isrc"))
        .when(pl.col("isrc").is_not_null())
        .then(pl.lit("unknown_isrc"))
        .when(pl.col("upc").is_not_null())
        .then(pl.lit("unknown_upc"))
        .when(
            pl.any_horizontal(
                pl.col("dsp_resource_id", "dsp_release_id", "proprietary_id").is_not_null()
            )
        )
        .then(pl.lit("unknown_dsp_id"))
        .otherwise(pl.lit("no_identifier"))
    )
    found_cols = out.select(
        track.alias("track_id"),
        release.alias("release_id"),
        method.alias("match_method"),
        reason.alias("suspense_reason"),
    )
    base = lines.drop(list(MATCH_COLUMNS), strict=False)
    return pl.concat([base, found_cols], how="horizontal")


def rematch_lines(
    frame: pl.DataFrame,
    *,
    tracks: pl.LazyFrame,
    releases: pl.LazyFrame,
    rules: pl.LazyFrame,
    rates: pl.LazyFrame,
    target: str,
) -> tuple[pl.DataFrame, dict[str, int]] | None:
    """Lines already in the lake (``CANONICAL``), matched and converted again with today's
    catalogue, rules and rates: ``(lines, counts)``, or None when nothing changes.

    - Unmatched lines are matched again.
    - Lines matched to a release only (by UPC or a DSP release id) although they carry an
      ISRC are provisional: they reach their track once it is added, and are only ever
      lifted to a track (one that finds no track now, its remembered match forgotten since,
      say, keeps the match it has rather than fall back into suspense).
    - Every line whose rate or its source differs from the rates table's now is converted
      again (conversion does not depend on the match).
    counts: ``matched`` (lines out of suspense), ``reconverted``, ``upgraded`` (to a track).
    """
    now = convert(frame.lazy(), rates, target=target).collect()
    stale = now["converted_amount"].is_not_null() & (
        (frame["fx_rate"] != now["fx_rate"]) | (frame["fx_source"] != now["fx_source"])
    ).fill_null(True)
    release_only = (
        frame["match_method"].is_in(RELEASE_LEVEL)
        & frame["track_id"].is_null()
        & frame["isrc"].is_not_null()
    )
    redo = frame["match_method"].is_null() | release_only
    if not (stale | redo).any():
        return None
    rematched = conform(
        match_lines(now.filter(redo).lazy(), tracks, releases, rules), CANONICAL
    ).collect()
    provisional = release_only.filter(redo)
    kept = provisional & rematched["track_id"].is_null()
    if kept.any():
        old = frame.filter(redo)
        rematched = rematched.with_columns(
            pl.when(pl.lit(kept)).then(pl.lit(old[c])).otherwise(pl.col(c)).alias(c)
            for c in MATCH_COLUMNS
        )
    merged = pl.concat(
        [
            frame.filter(~redo & ~stale),
            rematched.select(frame.columns),
            now.filter(~redo & stale).select(frame.columns),
        ]
    ).sort("line_no", maintain_order=True)
    if merged.equals(frame.sort("line_no", maintain_order=True)):
        return None
    unmatched = int(frame["match_method"].is_null().sum())
    return merged, {
        "matched": unmatched - int(merged["match_method"].is_null().sum()),
        "reconverted": int((~redo & stale).sum()),
        "upgraded": int((provisional & rematched["track_id"].is_not_null()).sum()),
    }
