"""Suspense: rebuild the per-key summary from the lake, and re-match lines when the catalogue
or the match rules change (unmatched lines never block a period; they are retried here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pipelines import lake
from pipelines.ingest.files import Catalog
from pipelines.layout import DataDir
from pipelines.resources import Resources
from royalty_engine.matching import dsp_key_expr, rematch_lines, title_artist_key_expr
from schemas.identifiers import gtin_key_expr, normalise_isrc_expr
from schemas.store import db
from schemas.store.models import IngestFile, MatchKind, SuspenseItem, SuspenseStatus


def key_order(names: list[str]) -> list[tuple[str, pl.Expr]]:
    """The best identifier of an unmatched line names its suspense item, in this order.
    A DSP's ids are that DSP's: keyed ``service:id`` (``dsp_key_expr``)."""
    return [
        ("isrc", normalise_isrc_expr("isrc")),
        ("upc", gtin_key_expr("upc")),
        ("dsp_resource_id", dsp_key_expr("dsp_resource_id", names)),
        ("dsp_release_id", dsp_key_expr("dsp_release_id", names)),
        ("proprietary_id", pl.col("proprietary_id")),
        ("title_artist", title_artist_key_expr()),
    ]


def _files(session: Session, data: DataDir, org_id: int) -> list[Path]:
    """Every accepted-lines part of the organisation's committed files (a file may have
    several parts; ``lake.committed_parts``)."""
    return lake.committed_parts(session, data, org_id)


def suspense_keys(lines: pl.LazyFrame) -> pl.LazyFrame:
    kind = pl.lit(None, dtype=pl.String)
    key = pl.lit(None, dtype=pl.String)
    for name, expr in reversed(key_order(lines.collect_schema().names())):
        kind = pl.when(expr.is_not_null()).then(pl.lit(name)).otherwise(kind)
        key = pl.when(expr.is_not_null()).then(expr).otherwise(key)
    return lines.with_columns(kind.alias("kind"), key.alias("key"))


def rebuild_suspense(session: Session, data: DataDir, org_id: int) -> int:
    files = _files(session, data, org_id)
    if files:
        lines = lake.scan_revenue(files).filter(pl.col("match_method").is_null())
        grouped = (
            suspense_keys(lines)
            .filter(pl.col("key").is_not_null())
            .group_by("kind", "key", "currency")
            .agg(
                pl.len().alias("lines"),
                pl.col("quantity").sum(),
                pl.col("amount").sum(),
                pl.col("title").drop_nulls().first(),
                pl.col("artist").drop_nulls().first(),
                pl.col("suspense_reason").first(),
                pl.col("source").unique().sort(),
                pl.col("reporting_period").min().alias("first"),
                pl.col("reporting_period").max().alias("last"),
            )
            .collect()
        )
    else:
        grouped = pl.DataFrame()
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for row in grouped.iter_rows(named=True):
        item = items.setdefault(
            (row["kind"], row["key"]),
            {
                "lines": 0,
                "quantity": 0,
                "amounts": {},
                "title": row["title"],
                "artist": row["artist"],
                "reason": row["suspense_reason"] or "unmatched",
                "sources": set(),
                "first": row["first"],
                "last": row["last"],
            },
        )
        item["lines"] += row["lines"]
        item["quantity"] += row["quantity"] or 0
        item["amounts"][row["currency"]] = format(row["amount"], "f")
        item["sources"] |= set(row["source"])
        item["first"] = min(item["first"], row["first"])
        item["last"] = max(item["last"], row["last"])
    existing = {
        (i.kind.value, i.key): i
        for i in session.scalars(sa.select(SuspenseItem).where(SuspenseItem.org_id == org_id))
    }
    for ident, stale in existing.items():
        if ident not in items:
            session.delete(stale)  # its lines match now
    for (kind_name, ident_key), v in items.items():
        entry = existing.get((kind_name, ident_key)) or SuspenseItem(
            org_id=org_id, kind=MatchKind(kind_name), key=ident_key, status=SuspenseStatus.OPEN
        )
        entry.reason, entry.title, entry.artist = v["reason"], v["title"], v["artist"]
        entry.sources, entry.lines = sorted(v["sources"]), v["lines"]
        entry.quantity, entry.amounts = v["quantity"], v["amounts"]
        entry.first_period, entry.last_period = v["first"], v["last"]
        session.add(entry)
    session.flush()
    return len(items)


def rematch(res: Resources, org_id: int, *, actor: str = "rematch") -> dict[str, int]:
    """Re-match unmatched lines in place, and convert again every line whose FX rate (or its
    source) is not the rates table's now: unconverted lines once their rate is imported, and
    lines converted at a rate since corrected (import the corrected rate, then rematch; a
    locked period takes it in a correction run). Rebuild suspense."""
    with res.factory() as session:
        catalog = Catalog.load(session, org_id)
        files = _files(session, res.data, org_id)
    rewritten = newly_matched = reconverted = upgraded = 0
    rates = catalog.rates.lazy()
    for path in files:
        frame = pl.read_parquet(path)
        redone = rematch_lines(
            frame,
            tracks=catalog.tracks.lazy(),
            releases=catalog.releases.lazy(),
            rules=catalog.rules.lazy(),
            rates=rates,
            target=catalog.currency,
        )
        if redone is None:
            continue
        merged, n = redone
        lake.write_parquet(merged, path)
        rewritten += 1
        newly_matched += n["matched"]
        reconverted += n["reconverted"]
        upgraded += n["upgraded"]
    # The ledger's counts are set from the lake as it now is, not incremented: a rematch
    # running at the same time as another, or retried after its transaction failed (the
    # lake already rewritten), leaves them right.
    counts = (
        lake.scan_revenue(files)
        .group_by("file_id")
        .agg(
            pl.col("match_method").is_not_null().sum().alias("matched"),
            pl.col("match_method").is_null().sum().alias("suspense"),
        )
        .collect()
        if files
        else pl.DataFrame()
    )
    with db.transaction(res.factory, actor=actor) as session:
        rows = {
            r.id: r
            for r in session.scalars(
                sa.select(IngestFile).where(IngestFile.org_id == org_id).with_for_update()
            )
        }
        for file_id, matched, in_suspense in counts.iter_rows():
            row = rows.get(file_id)
            if row is not None and (row.lines_matched, row.lines_suspense) != (
                matched,
                in_suspense,
            ):
                row.lines_matched, row.lines_suspense = int(matched), int(in_suspense)
        open_items = rebuild_suspense(session, res.data, org_id)
    return {
        "files_rewritten": rewritten,
        "lines_matched": newly_matched,
        "lines_reconverted": reconverted,
        "lines_upgraded": upgraded,  # from a release-level match to their track
        "suspense_items": open_items,
    }
