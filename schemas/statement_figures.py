"""The figures of a statement, in one table: key, label and sign.

Every place that shows or records the figures derives from :data:`TABLE`: the run's summary
per statement (:data:`SUMMARY_FIELDS`, the columns of ``StatementSummary``), the statements'
figures and labels (PDF, XLSX, CSV/JSON), the API and the portal's balance history. The
labels are the PDF statement's wording.

``sign`` is the figure's part in reaching the closing balance: ``+`` adds to it, ``−`` takes
from it, ``=`` is the closing balance reached, and ``""`` is not a term of the sum (the opening
balance it starts from, the recouped part of the earnings that is already in the other
figures, the balance carried forward, the reserves outstanding):
``closing = opening + sum of the signed terms`` (a cross-collateralised pool's settlement
moves the rest, see ``POOL_FIGURES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import polars as pl


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    sign: str  # "+", "−", "=" or "" (see the module docstring)
    summary: bool = True  # recorded per statement by the run (else a balance-only figure)


TABLE: tuple[Figure, ...] = (
    Figure("opening", "Opening balance", ""),
    Figure("earnings", "Royalties earned", "+"),
    Figure("advances", "Advances", "−"),
    Figure("costs", "Recoupable costs", "−"),
    Figure("recouped", "Recouped this period", ""),
    Figure("reserve_held", "Reserves held", "−"),
    Figure("reserve_released", "Reserves released", "+"),
    Figure("tax", "Tax withheld", "−"),
    Figure("payable", "Payable", "−"),
    Figure("closing", "Closing balance", "="),
    Figure("carried_forward", "Carried forward", ""),
    Figure("reserves_outstanding", "Reserves outstanding", "", summary=False),
)
# Per contract of a cross-collateralised pool (balances.py, step 4): the other contracts'
# earnings that recouped it, its earnings that recouped the others, and the balance moved
# in (+) or out (-) when the pool was paid.
POOL_TABLE: tuple[Figure, ...] = (
    Figure("recouped_from_pool", "Recouped from the pool", "", summary=False),
    Figure("recouped_for_pool", "Recouped for the pool", "", summary=False),
    Figure("pool_transfer", "Moved within the pool", "", summary=False),
)

# The figures the run records per statement (payee, currency), in the order the balance is
# reached.
SUMMARY_FIELDS: tuple[str, ...] = tuple(f.key for f in TABLE if f.summary)
# The figures shown on every statement, in the same order.
FIGURES: tuple[str, ...] = tuple(f.key for f in TABLE)
POOL_FIGURES: tuple[str, ...] = tuple(f.key for f in POOL_TABLE)
FIGURE_LABELS: dict[str, str] = {f.key: f.label for f in (*TABLE, *POOL_TABLE)}
# closing = opening + sum(sign * figure) over these
SIGNED: dict[str, int] = {f.key: 1 if f.sign == "+" else -1 for f in TABLE if f.sign in ("+", "−")}


def balance_formula() -> str:
    """The closing-balance rule in words, from :data:`TABLE` (the figures' signs): what the
    footer of every statement prints, so it is the sum the figures above it make."""
    terms = [
        ("+ " if f.sign == "+" else "- ") + f.label.lower() for f in TABLE if f.sign in ("+", "−")
    ]
    return f"{CLOSING_LABEL} = {TABLE[0].label.lower()} " + " ".join(terms)


CLOSING_LABEL = next(f.label for f in TABLE if f.sign == "=")


def closing_terms(figures: Mapping[str, Decimal]) -> list[tuple[str, str, Decimal]]:
    """``(sign, label, amount)`` of the closing balance's sum, in :data:`TABLE`'s order: the
    opening balance (sign ``""``) then every signed figure; ``closing`` is their sum."""
    out: list[tuple[str, str, Decimal]] = [("", TABLE[0].label, figures[TABLE[0].key])]
    for f in TABLE:
        if f.sign in ("+", "−"):
            out.append(("+" if f.sign == "+" else "-", f.label, figures[f.key]))
    return out


# --- status words: what a contract's (or a statement's) status code means to a payee ----------
# One table for every format (PDF, XLSX, CSV/JSON) and the portal. The codes are the engine's
# (royalty_engine.balances: paid, below_minimum, unrecouped, not_statement_date, zero) and the
# statement's own (nothing_payable: a self-billing payee with nothing to invoice).
STATUS_WORDS: dict[str, str] = {
    "paid": "Paid: the balance is payable this period",
    "unrecouped": "Unrecouped: advance not yet earned back",
    "below_minimum": "Below the minimum payment: carried to next period",
    "not_statement_date": "Not a payment date: carried to the next statement",
    "zero": "Settled: nothing owed either way",
    "nothing_payable": "Nothing payable this period",
}


def status_words(code: str | None) -> str:
    """What ``code`` means in words; an unknown code is shown readably, never raw."""
    if not code:
        return ""
    return STATUS_WORDS.get(code, code.replace("_", " ").capitalize())


# --- sources: the store that reported the revenue ----------------------------------------------
# A line's source on a statement is its ``service`` (Spotify, Apple Music, Deezer, ...). A line
# whose report names no service is shown under a readable name of its report format, never the
# parser id.
FORMAT_NAMES: dict[str, str] = {
    "apple": "Apple",
    "spotify": "Spotify",
    "youtube": "YouTube",
    "tiktok": "TikTok",
    "dsr": "DDEX sales report (DSR)",
    "distributor_csv": "Distributor statement",
    "distributor_noheader": "Distributor statement",
    "distributor_xlsx": "Distributor statement",
}


# The usual spelling of well-known stores, by their name in lower case: reports spell them
# differently ("SPOTIFY", "youtube"), and a statement lists each store once. A service not
# listed here is shown as reported.
SERVICE_NAMES: dict[str, str] = {
    name.lower(): name
    for name in (
        "Spotify",
        "Apple",
        "Apple Music",
        "iTunes",
        "YouTube",
        "YouTube Music",
        "Deezer",
        "Tidal",
        "Amazon Music",
        "TikTok",
        "SoundCloud",
        "Pandora",
        "Napster",
        "Audiomack",
        "Boomplay",
        "Anghami",
        "JioSaavn",
        "NetEase Cloud Music",
        "Tencent Music",
        "Facebook",
        "Instagram",
    )
}


def format_name(fmt: str | None) -> str:
    """A readable name for a report format (``distributor_csv`` -> "Distributor statement")."""
    if not fmt:
        return "Unknown source"
    return FORMAT_NAMES.get(fmt, fmt.replace("_", " ").strip().title())


def source_expr(service: str = "service", fmt: str = "source") -> pl.Expr:
    """The statement's "source" of a line: its service as reported (trimmed, well-known stores
    spelt the usual way: :data:`SERVICE_NAMES`), else the readable name of its format
    (:func:`format_name`)."""
    trimmed = pl.col(service).str.strip_chars()
    reported = trimmed.str.to_lowercase().replace_strict(
        SERVICE_NAMES, default=trimmed, return_dtype=pl.String
    )
    readable = pl.col(fmt).str.replace_all("_", " ").str.strip_chars().str.to_titlecase()
    named = (
        pl.col(fmt)
        .replace_strict(FORMAT_NAMES, default=readable, return_dtype=pl.String)
        .fill_null("Unknown source")
    )
    return (
        pl.when(reported.is_not_null() & (reported != ""))
        .then(reported)
        .otherwise(named)
        .alias("source")
    )
