"""Row-level checks on parsed revenue lines, vectorised: each failure names line, field, code.

``errors`` reject a line (it is kept aside with its reason, never silently dropped);
``warnings`` keep it (e.g. a malformed ISRC simply cannot match and lands in suspense).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from schemas.identifiers import is_valid_gtin_expr, is_valid_isrc_expr

ERRORS_SCHEMA = {
    "line_no": pl.Int64(),
    "field": pl.String(),
    "code": pl.String(),
    "message": pl.String(),
    "severity": pl.String(),
}

Check = tuple[pl.Expr, str, str, str | pl.Expr, str]  # condition, field, code, message, severity


def _check(
    lines: pl.LazyFrame, cond: pl.Expr, field: str, code: str, message: str | pl.Expr, severity: str
) -> pl.LazyFrame:
    msg = message if isinstance(message, pl.Expr) else pl.lit(message)
    return lines.filter(cond).select(
        pl.col("line_no"),
        pl.lit(field).alias("field"),
        pl.lit(code).alias("code"),
        msg.alias("message"),
        pl.lit(severity).alias("severity"),
    )


def check_lines(
    lines: pl.LazyFrame,
    *,
    territories: frozenset[str],
    currencies: frozenset[str],
    period_start: dt.date | None,
    period_end: dt.date | None,
) -> pl.LazyFrame:
    """All findings for ``lines`` (schema ``ERRORS_SCHEMA``), one row per line and field.

    Identifier syntax is checked once per distinct value (a report repeats its ISRCs and UPCs
    on many lines; the GTIN check digit alone costs ~1 µs a row), then looked up per line."""
    checks = _checks(territories, currencies, period_start, period_end, _invalid_ids(lines))
    found = [_check(lines, *c) for c in checks]
    return pl.concat(found, how="vertical").cast(ERRORS_SCHEMA)  # type: ignore[arg-type]


def validate_lines(
    lines: pl.DataFrame,
    *,
    territories: frozenset[str],
    currencies: frozenset[str],
    period_start: dt.date | None,
    period_end: dt.date | None,
) -> tuple[pl.Series, pl.DataFrame]:
    """(a boolean per line: does it have an ``error`` finding, all findings) in one pass:
    every check's condition is evaluated once per line, and the findings with their messages
    are built from the few flagged lines only. Same findings as ``check_lines``."""
    checks = _checks(territories, currencies, period_start, period_end, _invalid_ids(lines.lazy()))
    names = [f"_c{i}" for i in range(len(checks))]
    errors = [n for n, c in zip(names, checks, strict=True) if c[4] == "error"]
    flags = lines.select(
        *[c[0].fill_null(False).alias(n) for n, c in zip(names, checks, strict=True)]
    )
    flags = flags.with_columns(
        pl.any_horizontal(names).alias("_any"),
        (pl.any_horizontal(errors) if errors else pl.lit(False)).alias("_error"),
    )
    bad = flags["_error"].alias("bad")
    hit = flags["_any"]
    if not hit.any():
        return bad, pl.DataFrame(schema=ERRORS_SCHEMA)
    flagged = pl.concat([lines.filter(hit), flags.filter(hit)], how="horizontal").lazy()
    found = [_check(flagged, pl.col(n), *c[1:]) for n, c in zip(names, checks, strict=True)]
    return bad, pl.concat(found, how="vertical").cast(ERRORS_SCHEMA).collect()  # type: ignore[arg-type]


def _invalid_ids(lines: pl.LazyFrame) -> dict[str, pl.Series]:
    """The distinct ISRCs and UPCs of ``lines`` that are not valid (syntax, check digit; the
    rules of ``schemas.identifiers``, which normalise a value before judging it, as matching
    does)."""
    valid = {"isrc": is_valid_isrc_expr("isrc"), "upc": is_valid_gtin_expr("upc")}
    out = {}
    for col, ok in valid.items():
        distinct = lines.select(pl.col(col).drop_nulls().unique()).collect()
        out[col] = distinct.filter(~ok.fill_null(False))[col]
    return out


def _checks(
    territories: frozenset[str],
    currencies: frozenset[str],
    period_start: dt.date | None,
    period_end: dt.date | None,
    invalid: dict[str, pl.Series],
) -> list[Check]:
    """The checks; ``invalid``: the ISRCs and UPCs found invalid (``_invalid_ids``), so a
    line's identifier syntax is a lookup, not a check digit computed on every line."""
    terr = sorted(territories)
    curr = sorted(currencies)
    bad_isrc = pl.col("isrc").is_in(invalid["isrc"].implode())
    bad_upc = pl.col("upc").is_in(invalid["upc"].implode())
    checks: list[Check] = [
        (pl.col("amount").is_null(), "amount", "missing", "amount is missing", "error"),
        (
            pl.col("quantity").is_null(),
            "quantity",
            "missing",
            "quantity is missing",
            "error",
        ),
        (
            pl.col("currency").is_null(),
            "currency",
            "missing",
            "currency is missing",
            "error",
        ),
        (
            pl.col("currency").is_not_null() & ~pl.col("currency").is_in(curr),
            "currency",
            "unknown_currency",
            pl.format("{} is not an ISO 4217 currency", pl.col("currency")),
            "error",
        ),
        (
            pl.col("territory").is_null(),
            "territory",
            "missing",
            "territory is missing",
            "error",
        ),
        (
            pl.col("territory").is_not_null() & ~pl.col("territory").is_in(terr),
            "territory",
            "unknown_territory",
            pl.format("{} is not an ISO 3166-1 alpha-2 code", pl.col("territory")),
            "error",
        ),
        (
            pl.col("usage_start") > pl.col("usage_end"),
            "usage_start",
            "date_order",
            "usage_start is after usage_end",
            "error",
        ),
        (
            pl.col("isrc").is_not_null() & bad_isrc,
            "isrc",
            "invalid_isrc",
            pl.format("{} is not a valid ISRC", pl.col("isrc")),
            "warning",
        ),
        (
            pl.col("upc").is_not_null() & bad_upc,
            "upc",
            "invalid_upc",
            pl.format("{} is not a valid UPC/EAN", pl.col("upc")),
            "warning",
        ),
        (
            pl.col("isrc").is_null()
            & pl.col("upc").is_null()
            & pl.col("dsp_resource_id").is_null()
            & pl.col("dsp_release_id").is_null()
            & pl.col("proprietary_id").is_null(),
            "isrc",
            "no_identifier",
            "no ISRC, UPC or DSP/proprietary id: the line can only be matched by hand",
            "warning",
        ),
        (
            # a return is negative in units and amount alike; opposite signs are suspicious,
            # but the amount is what the DSP pays: kept, flagged (adjustments may be anything)
            (
                ((pl.col("quantity") < 0) & (pl.col("amount") > 0))
                | ((pl.col("quantity") > 0) & (pl.col("amount") < 0))
            )
            & pl.col("adjustment_type").is_null(),
            "amount",
            "sign_mismatch",
            pl.format(
                "units {} and amount {} have opposite signs (quantity, amount)",
                pl.col("quantity"),
                pl.col("amount"),
            ),
            "warning",
        ),
    ]
    # Lines outside the period the file declares are errors, except adjustments (YouTube
    # backpay, corrections), which legitimately refer to earlier months.
    if period_start is not None and period_end is not None:
        outside = (
            (pl.col("usage_start") < period_start) | (pl.col("usage_end") > period_end)
        ) & pl.col("adjustment_type").is_null()
        checks.append(
            (
                outside,
                "usage_start",
                "outside_period",
                pl.format(
                    "usage {}..{} is outside the file's period "
                    f"{period_start.isoformat()}..{period_end.isoformat()}",
                    pl.col("usage_start"),
                    pl.col("usage_end"),
                ),
                "error",
            )
        )
    return checks


def split_by_errors(
    lines: pl.LazyFrame, findings: pl.DataFrame
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(accepted, rejected) lines: a line with any ``error`` finding is rejected."""
    bad = findings.filter(pl.col("severity") == "error").select("line_no").unique().lazy()
    return (lines.join(bad, on="line_no", how="anti"), lines.join(bad, on="line_no", how="semi"))
