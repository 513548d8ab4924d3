"""Dates as reports write them: the one home of reading a report's date text, for single values
(``parse_date``) and Polars columns (``parse_date_expr``) alike, and of the fiscal calendars
some stores count their months in (``apple_fiscal_month``).

A format spec names the forms a column (or the file name) is written in, tried in order. Each
is either a ``strptime`` pattern (``%d.%m.%Y``; one without a day, such as ``%Y-%m``, gives the
month's first day) or one of the named forms below, which a pattern cannot express: month
names in any case (``June 2025``, ``JUN-25``, ``Sept 2025``), two-digit years, optional zeros.

* ``iso``: ``2025-06-30`` (a time after it is ignored: ``2025-06-30T12:00:00Z``), ``20250630``,
  ``2025/06/30``
* ``us``: month first: ``6/30/2025``, ``06/30/25``, ``6-30-2025``
* ``eu``: day first: ``30/06/2025``, ``30.06.2025``, ``30-06-25``
* ``text``: a day with a month name: ``30 Jun 2025``, ``30-JUN-25``, ``June 30, 2025``
* ``month``: a month, as its first day: ``June 2025``, ``Jun 2025``, ``JUN-25``, ``Jun'25``,
  ``2025-Jun``, ``2025-06``, ``202506``, ``06/2025``, ``2025/06``
* ``any``: ``iso``, ``text`` and ``month`` (every form that cannot be read two ways)

Month names are English (``calendar``'s, plus ``Sept``); a two-digit year is 20YY; a year
outside 1900-2100 is a misreading, never a date. The Python and Polars readers share the
regular expressions below and give the same date on every string (a test holds them to it).

Apple's fiscal calendar: its financial reports' file names carry the fiscal month
(``<vendor>_<MMYY>_<region>``); weeks run Sunday to Saturday; the fiscal year ends on the last
Saturday of September; each quarter has 13 weeks in months of 5, 4 and 4 weeks; a 53-week year
gives its extra week to the end of the first quarter, December (a quarter of 14 weeks, as in
fiscal 2023). Fiscal July 2026, for one, runs from 28 June to 1 August 2026: the file is the
reporting period July although its usage ends on 1 August.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence

import polars as pl

__all__ = [
    "NAMED_FORMS",
    "apple_fiscal_month",
    "is_date_format",
    "iso_period",
    "parse_date",
    "parse_date_expr",
]

# month name (lower case, no trailing dot) -> month number
MONTHS: dict[str, int] = {
    **{calendar.month_name[i].lower(): i for i in range(1, 13)},
    **{calendar.month_abbr[i].lower(): i for i in range(1, 13)},
    "sept": 9,
}
_MON = r"(?P<mon>[A-Za-z]{3,9})\.?"
_Y = r"(?P<y>\d{4}|\d{2})"
_Y4 = r"(?P<y>\d{4})"
_M = r"(?P<m>\d{1,2})"
_D = r"(?P<d>\d{1,2})"

# named form -> its regular expressions (full match; groups y, m or mon, and d)
NAMED_FORMS: dict[str, tuple[str, ...]] = {
    "iso": (
        rf"{_Y4}-{_M}-{_D}(?:[T ].*)?",
        r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})",
        rf"{_Y4}/{_M}/{_D}",
    ),
    "us": (rf"{_M}/{_D}/{_Y}", rf"{_M}-{_D}-{_Y}"),
    "eu": (rf"{_D}/{_M}/{_Y}", rf"{_D}\.{_M}\.{_Y}", rf"{_D}-{_M}-{_Y}"),
    "text": (
        rf"{_D}[ -]{_MON}[ -]{_Y}",
        rf"{_MON} {_D},? {_Y4}",
    ),
    "month": (
        rf"{_MON}[ \-/]?'?{_Y}",
        rf"{_Y4}[ \-/]{_MON}",
        rf"{_Y4}-{_M}",
        r"(?P<y>\d{4})(?P<m>\d{2})",
        rf"{_M}/{_Y4}",
        rf"{_Y4}/{_M}",
    ),
}
NAMED_FORMS["any"] = NAMED_FORMS["iso"] + NAMED_FORMS["text"] + NAMED_FORMS["month"]
_COMPILED = {
    name: [re.compile(p, re.IGNORECASE) for p in patterns] for name, patterns in NAMED_FORMS.items()
}
_YEARS = (1900, 2100)


def is_date_format(form: str) -> bool:
    """A named form or a strptime pattern (it holds a ``%`` directive)."""
    return form in NAMED_FORMS or "%" in form


def _has_day(pattern: str) -> bool:
    return any(d in pattern for d in ("%d", "%e", "%j", "%F", "%D", "%c", "%x"))


def _date(y: str, m: int | None, d: str | None) -> dt.date | None:
    year = int(y) + (2000 if len(y) == 2 else 0)
    if m is None or not _YEARS[0] <= year <= _YEARS[1]:
        return None
    try:
        return dt.date(year, m, int(d) if d else 1)
    except ValueError:
        return None


def _named(text: str, form: str) -> dt.date | None:
    for pattern in _COMPILED[form]:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        g = match.groupdict()
        month = MONTHS.get(g["mon"].lower()) if g.get("mon") else int(g["m"])
        found = _date(g["y"], month, g.get("d"))
        if found is not None:
            return found
    return None


# strptime patterns with month names (%b, %B) read them through the numbers: any case, full
# name or abbreviation alike (Python's strptime and Polars' disagree on both otherwise)
_NAMES = sorted(MONTHS, key=len, reverse=True)
_NAME_RE = rf"(?i)\b(?:{'|'.join(_NAMES)})\b"


def _by_number(pattern: str) -> str:
    return pattern.replace("%B", "%m").replace("%b", "%m").replace("%h", "%m")


def _strptime(text: str, pattern: str) -> dt.date | None:
    if _by_number(pattern) != pattern:
        text = re.sub(_NAME_RE, lambda m: f"{MONTHS[m[0].lower()]:02d}", text)
        pattern = _by_number(pattern)
    try:
        day = dt.datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a calendar date
    except ValueError:
        return None
    return day if _YEARS[0] <= day.year <= _YEARS[1] else None


def parse_date(text: str | None, formats: Sequence[str]) -> dt.date | None:
    """The date ``text`` is in the first of ``formats`` that reads it (spaces around ignored),
    or None."""
    if text is None:
        return None
    text = " ".join(text.split())
    for form in formats:
        day = _named(text, form) if form in NAMED_FORMS else _strptime(text, form)
        if day is not None:
            return day
    return None


def _named_expr(text: pl.Expr, form: str) -> pl.Expr:
    keys, values = list(MONTHS), list(MONTHS.values())
    out = []
    for pattern in NAMED_FORMS[form]:
        groups = re.compile(pattern).groupindex
        g = text.str.extract_groups(f"(?i)^(?:{pattern})$")
        y = g.struct.field("y")
        year = pl.when(y.str.len_chars() == 2).then("20" + y).otherwise(y).cast(pl.Int32)
        if "mon" in groups:
            month = (
                g.struct.field("mon")
                .str.to_lowercase()
                .replace_strict(keys, values, default=None, return_dtype=pl.Int32)
            )
        else:
            month = g.struct.field("m").cast(pl.Int32)
        day = g.struct.field("d").cast(pl.Int32) if "d" in groups else pl.lit(1, pl.Int32)
        iso = pl.format(
            "{}-{}-{}",
            year.cast(pl.String).str.zfill(4),
            month.cast(pl.String).str.zfill(2),
            day.cast(pl.String).str.zfill(2),
        )
        out.append(
            pl.when(year.is_between(*_YEARS)).then(
                iso.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
            )
        )
    return pl.coalesce(out)


def _strptime_expr(text: pl.Expr, pattern: str) -> pl.Expr:
    if _by_number(pattern) != pattern:
        for name in _NAMES:
            text = text.str.replace_all(rf"(?i)\b{name}\b", f"{MONTHS[name]:02d}")
        pattern = _by_number(pattern)
    if not _has_day(pattern):  # a month: its first day (Polars needs the day to make a date)
        text, pattern = text + "|01", pattern + "|%d"
    parsed = text.str.strptime(pl.Date, pattern, strict=False)
    return pl.when(parsed.dt.year().is_between(*_YEARS)).then(parsed)


def parse_date_expr(expr: pl.Expr | str, formats: Sequence[str]) -> pl.Expr:
    """Polars twin of ``parse_date``: a Date column (null where no format reads the text)."""
    col = pl.col(expr) if isinstance(expr, str) else expr
    text = col.str.replace_all(r"\s+", " ").str.strip_chars(" ")
    parsed = [
        _named_expr(text, f) if f in NAMED_FORMS else _strptime_expr(text, f) for f in formats
    ]
    out = parsed[0] if len(parsed) == 1 else pl.coalesce(parsed)
    name = col.meta.output_name(raise_if_undetermined=False)
    return out.alias(name) if name else out


_ISO_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def iso_period(text: str, *, end: bool) -> dt.date:
    """A DDEX ``ddex_IsoDate`` (YYYY[-MM[-DD]]) as a date: its first day, or last if ``end``."""
    m = _ISO_DATE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a date (YYYY[-MM[-DD]])")
    year, month, day = int(m[1]), m[2], m[3]
    if month is None:
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    if day is None:
        first = dt.date(year, int(month), 1)
        if not end:
            return first
        nxt = dt.date(year + (first.month == 12), first.month % 12 + 1, 1)
        return nxt - dt.timedelta(days=1)
    return dt.date(year, int(month), int(day))


# ---------------------------------------------------------------------------------------------
# Fiscal calendars

_WEEKS = (5, 4, 4) * 4  # October .. September
_SATURDAY = 5


def _last_saturday_of_september(year: int) -> dt.date:
    last = dt.date(year, 9, 30)
    return last - dt.timedelta(days=(last.weekday() - _SATURDAY) % 7)


def apple_fiscal_month(year: int, month: int) -> tuple[dt.date, dt.date]:
    """First and last day of Apple's fiscal ``month`` of calendar ``year`` (fiscal October to
    December belong to the next fiscal year, but keep their calendar year: ``0126`` is
    fiscal January 2026, ``1025`` fiscal October 2025)."""
    if not 1 <= month <= 12:
        raise ValueError(f"not a month: {month}")
    fiscal_year = year + 1 if month >= 10 else year
    start = _last_saturday_of_september(fiscal_year - 1) + dt.timedelta(days=1)
    end = _last_saturday_of_september(fiscal_year)
    weeks = list(_WEEKS)
    if (end - start).days + 1 == 53 * 7:
        weeks[2] += 1  # December
    index = (month - 10) % 12
    first = start + dt.timedelta(weeks=sum(weeks[:index]))
    return first, first + dt.timedelta(weeks=weeks[index], days=-1)
