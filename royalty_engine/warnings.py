"""What an accountant wants to be told before approving a period: terms that compute, but
perhaps not as the contract means.

Each check reuses the rule it warns about (``earnings.rate_candidates`` for rates,
``earnings.resolve_splits`` for splits), so a warning describes exactly what the run does.

- ``W-RATE-AMBIGUOUS``: two rates of a contract both match a line of the period and neither
  is more specific in every dimension (usage type, channel, territories); one wins by the
  ranking (usage type outranks channel, channel outranks territories) without the contract
  necessarily saying so.
- ``W-SPLIT-OVERRIDE``: a track with revenue in the period has track-level splits, which
  replace its release's splits: the release-level payees missing from the track's splits get
  nothing from that track.
- ``W-SHARE-DROP``: a payee had 100% of a track on the last day of the period before; during
  this period the track's shares add up to less than 100% (the rest is kept by the label).

Pure: frames in, a list of :class:`RunWarning` out, in a stable order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl

from royalty_engine.earnings import (
    RATE_KEYS,
    SPECIFICITY,
    Grain,
    _segments,
    aggregate,
    period_lines,
    rate_candidates,
    resolve_splits,
)
from royalty_engine.periods import Period
from royalty_engine.terms import EngineError, Terms

RATE_AMBIGUOUS = "W-RATE-AMBIGUOUS"
SPLIT_OVERRIDE = "W-SPLIT-OVERRIDE"
SHARE_DROP = "W-SHARE-DROP"
PLACE = ["track_id", "release_id", "as_of", "class_id"]
_DIMS = list(SPECIFICITY)  # "usage type", "channel", "territories"


@dataclass(frozen=True)
class RunWarning:
    """One warning: a stable ``code``, a message for people and what it is about."""

    code: str
    message: str
    subject: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "subject": self.subject}


def period_warnings(lines: pl.LazyFrame, terms: Terms, period: Period) -> list[RunWarning]:
    """Every warning for a period's lines and terms (the terms as a run snapshots them)."""
    names = _Names(terms)
    grain = Grain.of(terms)  # the run's own grain: one aggregation, as the run does it
    in_period = period_lines(lines, period)
    agg = _segments(aggregate(in_period, grain)[0].collect(), grain).join(
        grain.segment_table(), on="segment", how="left"
    )
    seen = _Seen(agg, terms, grain, names, in_period)
    return [
        *ambiguous_rates(seen),
        *split_overrides(seen),
        *share_drops(terms, period, grain, names),
    ]


@dataclass(frozen=True)
class _Seen:
    """The period's matched lines as the run aggregates them (``agg``: ``PLACE`` keys, usage
    type, channel, reporting period), the terms, and how to name things."""

    agg: pl.DataFrame
    terms: Terms
    grain: Grain
    names: _Names
    lines: pl.LazyFrame  # the period's lines, for an example of each warning

    def example(self, row: dict[str, Any]) -> tuple[int | None, str]:
        """(track, territory) of one line of the period at ``row``'s keys (release, track if
        known, usage type and channel if given, reporting period, territory class): a
        filtered scan that stops at the first line, run only for the few warnings found."""
        territories = [t for t, c in self.grain.classes.items() if c == row["class_id"]]
        match = (
            (pl.col("release_id") == row["release_id"])
            & (pl.col("reporting_period") == row["reporting_period"])
            & pl.col("territory").fill_null("WW").is_in(territories)
            & pl.col("match_method").is_not_null()
        )
        if row.get("track_id") is not None:
            match &= pl.col("track_id") == row["track_id"]
        if "usage_type" in row:
            match &= pl.col("usage_type").fill_null("other") == row["usage_type"]
        if "channel" in row:
            match &= pl.col("commercial_model").fill_null("") == row["channel"]
        found = self.lines.filter(match).select("track_id", "territory").head(1).collect()
        if not found.height:
            return row.get("track_id"), ""
        return found["track_id"][0], found["territory"][0] or ""


# --- W-RATE-AMBIGUOUS -------------------------------------------------------------------------
def ambiguous_rates(seen: _Seen) -> list[RunWarning]:
    """Pairs of rates matching the same line where the one applied is not at least as
    specific as the other in every dimension (or they tie and start on the same day)."""
    agg, terms, grain, names = seen.agg, seen.terms, seen.grain, seen.names
    applied = _splits(agg.select(PLACE).unique(), terms, grain)
    if applied is None or not applied.height or not terms.rates.height:
        return []
    needs = (
        agg.with_columns(
            pl.col("usage_type").cast(pl.String),
            pl.col("channel").cast(pl.String),
            pl.col("reporting_period").cast(pl.String),
        )
        .join(applied.select(*PLACE, "contract_id"), on=PLACE, nulls_equal=True)
        # each need's example: its first aggregate (release, track, month), all from one
        .sort("release_id", "track_id", "reporting_period", nulls_last=True)
        .group_by(RATE_KEYS, maintain_order=True)
        .agg(pl.col("track_id", "release_id", "reporting_period").first())
    )
    flags = [e.alias(f"_d{i}") for i, e in enumerate(SPECIFICITY.values())]
    cand = (
        rate_candidates(needs, terms.rates, grain.members)
        .with_columns(*flags)
        .with_columns(pl.int_range(pl.len()).over(RATE_KEYS).alias("_rank"))
    )
    dims = [f"_d{i}" for i in range(len(_DIMS))]
    winner = cand.filter(pl.col("_rank") == 0).select(
        *RATE_KEYS,
        pl.col("rate_id").alias("w_id"),
        pl.col("effective_from").alias("w_from"),
        *(pl.col(d).alias(f"w{d}") for d in dims),
    )
    others = cand.filter(pl.col("_rank") > 0).join(winner, on=RATE_KEYS)
    more = pl.any_horizontal(*(pl.col(d) & ~pl.col(f"w{d}") for d in dims))
    tie = pl.all_horizontal(*(pl.col(d) == pl.col(f"w{d}") for d in dims)) & (
        pl.col("effective_from") == pl.col("w_from")
    )
    clash = (
        others.filter(more | tie)
        .sort(["contract_id", "w_id", "rate_id", "as_of", "usage_type", "channel", "class_id"])
        .unique(["contract_id", "w_id", "rate_id"], keep="first", maintain_order=True)
    )
    out = []
    for row in clash.iter_rows(named=True):
        win, other = names.rate(row["w_id"]), names.rate(row["rate_id"])
        w_more = [n for n, d in zip(_DIMS, dims, strict=True) if row[f"w{d}"] and not row[d]]
        o_more = [n for n, d in zip(_DIMS, dims, strict=True) if row[d] and not row[f"w{d}"]]
        track_id, where = seen.example(row)
        track = names.track(track_id) if track_id is not None else None
        line = (
            f"{_usage(row['usage_type'])} / {_channel(row['channel'])} lines of "
            f"{row['reporting_period']}"
            + (f" in {where}" if where else "")
            + (f" (e.g. track {track})" if track else "")
        )
        if o_more:
            why = (
                f"neither is more specific in every dimension (rate {row['w_id']} in "
                f"{_and(w_more)}, rate {row['rate_id']} in {_and(o_more)})"
            )
            rule = f"{_and(w_more)} outranks {_and(o_more)}"
        else:
            why = "they are equally specific and start on the same day"
            rule = "the later-numbered rate is taken"
        out.append(
            RunWarning(
                RATE_AMBIGUOUS,
                f"Contract {names.contract(row['contract_id'])}: rates {row['w_id']} "
                f"({win}) and {row['rate_id']} ({other}) both match {line}; {why}. "
                f"Rate {row['w_id']} is applied ({rule}). If the contract means the other, "
                "make the intended rate more specific in every dimension, or narrow the "
                "other's usage type, channel, territories or dates.",
                {
                    "contract_id": row["contract_id"],
                    "contract": names.contract(row["contract_id"]),
                    "applied_rate_id": row["w_id"],
                    "other_rate_id": row["rate_id"],
                    "applied_more_specific_in": w_more,
                    "other_more_specific_in": o_more,
                    "usage_type": row["usage_type"],
                    "channel": row["channel"],
                    "territory": where,
                    "reporting_period": row["reporting_period"],
                    "terms_as_of": str(row["as_of"]),
                    "track_id": track_id,
                    "release_id": row["release_id"],
                },
            )
        )
    return out


# --- W-SPLIT-OVERRIDE -------------------------------------------------------------------------
def split_overrides(seen: _Seen) -> list[RunWarning]:
    """Release-level payees who get nothing from a track of the release with revenue in the
    period, because the track's own splits replace the release's and do not name them."""
    agg, terms, grain, names = seen.agg, seen.terms, seen.grain, seen.names
    with_own = terms.splits.filter(pl.col("track_id").is_not_null())["track_id"].unique()
    placements = (
        agg.filter(pl.col("track_id").is_in(with_own.implode()))
        .group_by(PLACE)
        .agg(pl.col("reporting_period").cast(pl.String).min())
    )
    if not placements.height:
        return []
    actual = _splits(placements, terms, grain)
    release_only = _splits(
        placements.with_columns(pl.col("track_id").alias("_track"), pl.lit(None).alias("track_id"))
        .cast({"track_id": pl.Int64})
        .select(*PLACE, "_track", "reporting_period"),
        terms,
        grain,
    )
    if actual is None or release_only is None:
        return []
    keys = ["_track", "as_of", "class_id", "payee_id"]
    track_level = actual.filter(pl.col("level") == "track_id").select(
        pl.col("track_id").alias("_track"), "as_of", "class_id", "payee_id"
    )
    lost = (
        release_only.join(
            track_level.select("_track", "as_of", "class_id").unique(),
            on=["_track", "as_of", "class_id"],
            how="semi",
        )
        .join(track_level, on=keys, how="anti")
        .sort("_track", "payee_id", "as_of", "class_id", "split_id")
    )
    out = []
    for (track_id,), rows in lost.group_by(["_track"], maintain_order=True):
        first = rows.row(0, named=True)
        payees = rows.unique(["payee_id"], keep="first", maintain_order=True)
        who = [
            f"{names.payee(r['payee_id'])} ({_pct(r['share'])} on the release, contract "
            f"{names.contract(r['contract_id'])})"
            for r in payees.iter_rows(named=True)
        ]
        _, where = seen.example({**first, "track_id": track_id})
        out.append(
            RunWarning(
                SPLIT_OVERRIDE,
                f"Track {names.track(track_id)}: its own splits replace the splits of release "
                f"{names.release(first['release_id'])}, so {_and(who)} "
                f"{'gets' if len(who) == 1 else 'get'} nothing from this track"
                + f" (e.g. {first['reporting_period']}"
                + (f" in {where})" if where else ")")
                + ". If they should share in it, add them to the track's splits.",
                {
                    "track_id": track_id,
                    "release_id": first["release_id"],
                    "payees": [
                        {
                            "payee_id": r["payee_id"],
                            "payee": names.payee(r["payee_id"]),
                            "contract_id": r["contract_id"],
                            "release_split_id": r["split_id"],
                            "release_share": str(r["share"]),
                        }
                        for r in payees.iter_rows(named=True)
                    ],
                    "reporting_period": first["reporting_period"],
                    "terms_as_of": str(first["as_of"]),
                    "territory": where,
                },
            )
        )
    return out


# --- W-SHARE-DROP -----------------------------------------------------------------------------
def share_drops(terms: Terms, period: Period, grain: Grain, names: _Names) -> list[RunWarning]:
    """Tracks whose shares fall under 100% during the period, for a payee who had all of the
    track on the last day of the period before (by the splits in force, track or release)."""
    if not terms.tracks.height or not terms.splits.height:
        return []
    before = period.start - dt.timedelta(days=1)
    classes = pl.DataFrame(
        {"class_id": sorted(set(grain.classes.values()))}, schema={"class_id": pl.Int32}
    )
    tracks = terms.tracks.select("track_id", "release_id")

    def at(days: list[dt.date], which: pl.DataFrame) -> pl.DataFrame | None:
        dates = pl.DataFrame({"as_of": days}, schema={"as_of": pl.Date})
        return _splits(which.join(dates, how="cross").join(classes, how="cross"), terms, grain)

    prev = at([before], tracks)
    if prev is None:
        return []
    whole = (
        prev.group_by("track_id", "class_id", "payee_id")
        .agg(pl.col("share").sum())
        .filter(pl.col("share") == Decimal(1))
        .select("track_id", "class_id", pl.col("payee_id").alias("had_all"))
    )
    if not whole.height:
        return []
    days = [period.start] + [b for b in grain.boundaries if period.start < b <= period.end]
    now = at(days, tracks.join(whole.select("track_id").unique(), on="track_id", how="semi"))
    if now is None:
        return []
    totals = (
        whole.join(
            tracks.join(pl.DataFrame({"as_of": days}, schema={"as_of": pl.Date}), how="cross"),
            on="track_id",
        )
        .join(
            now.group_by("track_id", "as_of", "class_id").agg(
                pl.col("share").sum().alias("total"),
                pl.struct("payee_id", "share").alias("shares"),
            ),
            on=["track_id", "as_of", "class_id"],
            how="left",
        )
        .with_columns(pl.col("total").fill_null(Decimal(0)))
        .filter(pl.col("total") < Decimal(1))
        .sort("track_id", "had_all", "as_of", "class_id")
    )
    # one warning per track, payee and outcome (shares and where)
    found: dict[tuple[int, int, Decimal, Decimal], list[dict[str, Any]]] = {}
    for row in totals.iter_rows(named=True):
        mine = sum(
            (Decimal(x["share"]) for x in row["shares"] or [] if x["payee_id"] == row["had_all"]),
            Decimal(0),
        )
        key = (row["track_id"], row["had_all"], Decimal(row["total"]), mine)
        found.setdefault(key, []).append(row)
    out = []
    for (track_id, payee_id, total, mine), rows in found.items():
        start = min(r["as_of"] for r in rows)
        where = _territories(sorted({r["class_id"] for r in rows}), grain)
        who = names.payee(payee_id)
        out.append(
            RunWarning(
                SHARE_DROP,
                f"Track {names.track(track_id)}: {who} had 100% on {before}; from {start} "
                f"the splits in force add up to {_pct(total)} ({who} {_pct(mine)}) {where}, "
                f"so {_pct(Decimal(1) - total)} of its revenue there is kept by the label. If "
                "that is not what the contract says, add or extend a split.",
                {
                    "track_id": track_id,
                    "payee_id": payee_id,
                    "payee": who,
                    "previous_share": "1",
                    "share": str(mine),
                    "total_share": str(total),
                    "from": str(start),
                    "territories": where,
                },
            )
        )
    return out


# --- helpers ----------------------------------------------------------------------------------
def _splits(placements: pl.DataFrame, terms: Terms, grain: Grain) -> pl.DataFrame | None:
    """``resolve_splits`` (the run's rule); None when the splits are over 100% (the run
    itself refuses them, with the details)."""
    try:
        return resolve_splits(placements, terms.splits, grain.members)
    except EngineError:
        return None


def _territories(class_ids: list[int], grain: Grain) -> str:
    real = {t: c for t, c in grain.classes.items() if t not in ("WW", "ZZ")}
    codes = sorted(t for t, c in real.items() if c in class_ids)
    if len(codes) == len(real):
        return "worldwide"
    if len(codes) <= 6:
        return "in " + ", ".join(codes)
    rest = sorted(set(real) - set(codes))
    if len(rest) <= 6:
        return "everywhere but " + ", ".join(rest)
    return f"in {len(codes)} territories ({', '.join(codes[:3])}, …)"


def _pct(share: Decimal | str) -> str:
    value = (Decimal(share) * 100).normalize()
    return f"{value:f}%"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _usage(value: str) -> str:
    return "any usage type" if value == "*" else value


def _channel(value: str) -> str:
    return "any channel" if value in ("*", "") else value


class _Names:
    """How warnings name things: references, ISRCs and titles, payee names."""

    def __init__(self, terms: Terms) -> None:
        self.contracts = dict(terms.contracts.select("contract_id", "reference").rows())
        self.payees = dict(terms.payees.select("payee_id", "name").rows())
        self.tracks = {
            r[0]: (r[1], r[2], r[3])
            for r in terms.tracks.select("track_id", "isrc", "title", "release_id").rows()
        }
        self.rates = {r["rate_id"]: r for r in terms.rates.iter_rows(named=True)}

    def contract(self, cid: int) -> str:
        return str(self.contracts.get(cid) or cid)

    def payee(self, pid: int) -> str:
        return str(self.payees.get(pid) or f"payee {pid}")

    def track(self, tid: int) -> str:
        isrc, title, _ = self.tracks.get(tid, (None, None, None))
        if isrc is None:
            return str(tid)
        return f"{isrc} “{title}”" if title else str(isrc)

    def release(self, rid: int) -> str:
        return str(rid)

    def rate(self, rid: int) -> str:
        r = self.rates.get(rid)
        if r is None:
            return str(rid)
        rate = format(Decimal(r["rate"]).normalize(), "f")
        return (
            f"{_usage(r['usage_type'])}, {_channel(r['channel'])}, {r['territories']}: {rate}"
            f" from {r['effective_from']}"
        )
