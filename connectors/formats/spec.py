"""Declarative report layouts: a YAML spec per format and one generic, vectorised parser.

A spec (``schemas/formats/<name>.yaml``; its model, ``FormatSpec``, is the contract in
``schemas.format_spec``) says how to read a delimited text (CSV/TSV) or XLSX report and how its
columns become ``schemas.revenue.PARSED`` fields: types and formats, sign rules, date rules,
currency, identifiers, value maps. See ``docs/adding-a-format.md`` for an annotated example.

Parsing is vectorised in Polars: every column is read as text, then cast with
``strict=False``; a value that does not cast (or breaks a rule) becomes a ``RowError`` for its
line, and that line stays out of ``lines``. ``line_no`` is the 1-based line a person would
count in the file (header included; the first physical line of a record that spans lines),
``raw_hash`` is the SHA-256 hex of the raw line text (UTF-8, without its line terminator or a
BOM, physical lines of one record joined by ``\\n``; for XLSX the row's cell texts joined by
tabs), so the same line hashes the same whatever the file's encoding.

Delimited files are read in record-aligned batches of about ``BATCH_BYTES`` (never cutting
inside a quoted field), so the parser's own working memory stays bounded; ``parse_batches``
hands the batches out one by one for callers that do not want the whole file in memory.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import mmap
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from connectors.formats import archive
from connectors.formats.base import FileMeta, FileRejected, ParsedFile, RowError, sha256_hex
from schemas.format_spec import ColumnType, Condition, FormatSpec, Span, column_key
from schemas.report_dates import apple_fiscal_month, parse_date, parse_date_expr
from schemas.revenue import AMOUNT, PARSED, conform

# ---------------------------------------------------------------------------------------------
# parsing constants

STRIP = " \t\r\n\ufeff\u00a0"
# what the lake's amounts hold (``schemas.revenue.AMOUNT``): more is refused, never rounded
AMOUNT_SCALE: int = AMOUNT.scale
AMOUNT_DIGITS: int = (AMOUNT.precision or 38) - AMOUNT.scale
_TOO_PRECISE_RE = rf"\.\d{{{AMOUNT_SCALE}}}\d*[1-9]"  # a nonzero digit after the 12th place
_TOO_BIG_RE = rf"^[+-]?\(?[+-]?0*[1-9]\d{{{AMOUNT_DIGITS},}}(\.\d*)?\)?-?$"


# ---------------------------------------------------------------------------------------------
# reading


BATCH_BYTES = 64 << 20  # delimited files are parsed in record-aligned batches of about this size


@dataclass
class _Layout:
    """What the header (or the first line) says about a file, before reading its data."""

    header: list[str]
    index: dict[str, int]  # spec column name -> file column index (present columns only)
    ncols: int
    drift: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


Batch = tuple[pl.DataFrame, bool]  # line_no, raw, nfields, c<i>...; is it the last batch


@dataclass
class _Skip:
    """Lines of one batch that are not data."""

    blank: int
    in_footer: bool
    lines: dict[str, list[int]] = field(default_factory=dict)  # reason -> line numbers
    trailer: list[str] = field(default_factory=list)  # their text, for control totals


def _line_offset(path: Path, line_index: int) -> int:
    """Byte offset where 0-based line ``line_index`` starts (past a UTF-8 BOM)."""
    with path.open("rb") as fh:
        start = len(codecs.BOM_UTF8) if fh.read(3) == codecs.BOM_UTF8 else 0
        fh.seek(start)
        offset, remaining = start, line_index
        while remaining:
            block = fh.read(1 << 20)
            if not block:
                return offset  # the file ends before that line
            idx = -1
            while remaining and (idx := block.find(b"\n", idx + 1)) != -1:
                remaining -= 1
            if not remaining:
                return offset + idx + 1
            offset += len(block)
        return offset


def record_chunks(
    path: Path, start: int, *, first_line: int, quote: str | None, size: int | None = None
) -> Iterator[tuple[bytes, int, bool]]:
    """``(bytes, first line number, last?)`` of about ``size`` bytes each, cut only between
    records: at a newline with an even number of quote characters before it."""
    size = size or BATCH_BYTES
    total = path.stat().st_size
    if start >= total:
        return
    q = quote.encode() if quote else None
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos, line, released = start, first_line, 0
        while pos < total:
            end = total if total - pos < size + size // 2 else pos + size
            if end < total:
                nl = mm.find(b"\n", end)
                end = total if nl == -1 else nl + 1
            pieces = [mm[pos:end]]
            if q is not None and end < total:
                quotes = pieces[0].count(q)
                step = 0
                while quotes % 2 and end < total:
                    # inside a quoted field: move to a later newline (further each time, so
                    # a stray quote cannot make this quadratic) until the count is even
                    nl = mm.find(b"\n", end + step)
                    nxt = total if nl == -1 else nl + 1
                    pieces.append(mm[end:nxt])
                    quotes += pieces[-1].count(q)
                    end, step = nxt, min(max(2 * step, 1 << 12), size)
            chunk = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            del pieces
            # the pages just copied out stay in the page cache but leave this process's RSS
            done = end - end % mmap.PAGESIZE
            if done > released:
                mm.madvise(mmap.MADV_DONTNEED, released, done - released)
                released = done
            yield chunk, line, end >= total
            line += chunk.count(b"\n")
            pos = end


def _split_line(line: str, delimiter: str, quote: str | None) -> list[str]:
    if quote is None:
        return line.split(delimiter)
    try:
        row = next(csv.reader([line], delimiter=delimiter, quotechar=quote), [])
    except csv.Error:  # not a line of this layout (e.g. another encoding's bytes): no columns
        return []
    return list(row)


def _group(pattern: str, text: str, what: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise FileRejected(
            "filename_mismatch", f"{what}: the file name {text!r} does not match {pattern!r}"
        )
    return m.group(1) if m.re.groups else m.group(0)


def _parse_date(text: str, formats: list[str], what: str) -> dt.date:
    day = parse_date(text, formats)
    if day is None:
        raise FileRejected(
            "invalid_date", f"{what}: {text!r} does not match {' or '.join(formats)}"
        )
    return day


def _span_bounds(day: dt.date, span: Span) -> tuple[dt.date, dt.date]:
    if span == "day":
        return day, day
    if span == "month":
        start = day.replace(day=1)
        nxt = (start + dt.timedelta(days=32)).replace(day=1)
        return start, nxt - dt.timedelta(days=1)
    return day.replace(month=1, day=1), day.replace(month=12, day=31)


def _span_start(expr: pl.Expr, span: Span) -> pl.Expr:
    return {"day": expr, "month": expr.dt.month_start(), "year": expr.dt.truncate("1y")}[span]


def _span_of(
    cast: Callable[[pl.Expr], pl.Expr],
    bound: Callable[[pl.Expr, Span], pl.Expr],
    span: Span,
    expr: pl.Expr,
) -> pl.Expr:
    return bound(cast(expr), span)


def _span_end(expr: pl.Expr, span: Span) -> pl.Expr:
    if span == "day":
        return expr
    if span == "month":
        return expr.dt.month_end()
    return expr.dt.truncate("1y").dt.offset_by("1y").dt.offset_by("-1d")


class SpecParser:
    """The generic parser for one ``FormatSpec`` (satisfies ``base.Parser``)."""

    def __init__(self, spec: FormatSpec, *, source: Path | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.source = source  # the spec file, for messages
        self._file_re = re.compile(spec.file_name, re.IGNORECASE) if spec.file_name else None
        self._fp_re = re.compile(spec.fingerprint_pattern) if spec.fingerprint_pattern else None
        self._known = {
            column_key(label): col.name
            for col in spec.columns
            for label in (col.name, *col.aliases)
        }
        self.specificity = len(spec.fingerprint) + (1 if self._fp_re else 0)
        self._used = spec.used_columns()

    def __repr__(self) -> str:
        return f"SpecParser({self.name!r})"

    # -- detection -------------------------------------------------------------------------

    def sniff(self, filename: str, head: bytes) -> float:
        """0.7 x the share of fingerprint columns found + 0.3 if the file name matches."""
        is_zip = head.startswith(b"PK\x03\x04")
        if (self.spec.kind == "xlsx") != is_zip or head.startswith(archive.GZIP_MAGIC):
            return 0.0
        if self.spec.kind == "xlsx":
            return self._score(filename, 0.0)
        try:
            lines = self._head_lines(head, self._encoding(head))
        except (FileRejected, UnicodeError, LookupError):
            return 0.0
        return self._score(filename, self._fingerprint_share(lines))

    def sniff_path(self, path: Path, filename: str) -> float:
        """Like ``sniff``, reading what the head bytes cannot show (an XLSX header row)."""
        if self.spec.kind != "xlsx":
            return self.sniff(filename, archive.read_head(path))
        if not archive.read_head(path, 4).startswith(b"PK\x03\x04"):
            return 0.0
        try:
            rows = self._xlsx_frame(path, n_rows=self.spec.header_search_lines + 1)
        except FileRejected:
            return 0.0
        lines = [[v or "" for v in row] for row in rows.rows()]
        return self._score(filename, self._fingerprint_share_rows(lines))

    def _score(self, filename: str, share: float) -> float:
        base = re.split(r"[\\/]", filename)[-1]
        if self._file_re is None:
            return share
        return 0.7 * share + (0.3 if self._file_re.search(base) else 0.0)

    @staticmethod
    def _head_lines(head: bytes, encoding: str) -> list[str]:
        codec = "utf-8-sig" if encoding == "utf-8" else encoding
        text = head.decode(codec, errors="replace").removeprefix("\ufeff")
        lines = text.split("\n")
        if len(head) >= archive.HEAD_BYTES and len(lines) > 1:
            lines = lines[:-1]  # cut by the end of the head
        return [ln.removesuffix("\r") for ln in lines]

    def _fingerprint_share(self, lines: list[str]) -> float:
        if self.spec.header == "none":
            data = [ln for ln in lines[self.spec.skip_rows :] if ln.strip()]
            if self._fp_re is None or not data:
                return 0.0
            return 1.0 if self._fp_re.search(data[0]) else 0.0
        rows = [
            _split_line(ln, self.spec.delimiter, self.spec.quote)
            for ln in lines[: self.spec.header_search_lines]
        ]
        return self._fingerprint_share_rows(rows)

    def _fingerprint_share_rows(self, rows: list[list[str]]) -> float:
        if not self.spec.fingerprint:
            return 0.0
        wanted = {column_key(n) for n in self.spec.fingerprint}
        if isinstance(self.spec.header, int):
            rows = rows[self.spec.header : self.spec.header + 1]
        best = 0
        for row in rows[: self.spec.header_search_lines]:
            best = max(best, len(wanted & {column_key(c) for c in row}))
        return best / len(wanted)

    def _find_header(self, rows: list[list[str]]) -> int:
        """``header: auto``: the line among the first few with most fingerprint columns."""
        wanted = {column_key(n) for n in self.spec.fingerprint}
        scored = [
            (len(wanted & {column_key(c) for c in row}), -i)
            for i, row in enumerate(rows[: self.spec.header_search_lines])
        ]
        if not scored or max(scored)[0] * 2 < len(wanted):
            raise FileRejected(
                "header_not_found",
                f"none of the first {self.spec.header_search_lines} lines holds the columns "
                f"{', '.join(self.spec.fingerprint)}",
            )
        return -max(scored)[1]

    # -- parsing ---------------------------------------------------------------------------

    def parse(self, path: Path, filename: str, *, workdir: Path | None = None) -> ParsedFile:
        """Parse a local, decompressed file; ``workdir`` holds a transcoded copy if needed.

        The whole file's lines end up in one frame (about 400 bytes a line); ``parse_batches``
        gives the same result in pieces, for files too large to hold at once.
        """
        parts = list(self.parse_batches(path, filename, workdir=workdir))
        final = parts[-1]
        info = [p.meta.extra.pop("info_lines") for p in parts if "info_lines" in p.meta.extra]
        if info:
            final.meta.extra["info_lines"] = pl.concat(info, how="vertical")
        return ParsedFile(
            lines=pl.concat([p.lines for p in parts], how="vertical", rechunk=False),
            meta=final.meta,
            errors=[e for p in parts for e in p.errors],
            drift=final.drift,
        )

    def parse_batches(
        self,
        path: Path,
        filename: str,
        *,
        workdir: Path | None = None,
        batch_bytes: int | None = None,
    ) -> Iterator[ParsedFile]:
        """The file as consecutive ``ParsedFile`` pieces of about ``BATCH_BYTES`` of text each.

        Each piece holds its lines and row errors, and the drift. File-level figures (period,
        control totals, skipped and blank lines, info totals) are only known at the end: they
        are on the last piece, whose ``meta.extra["final"]`` is True (False on the others).
        """
        with tempfile.TemporaryDirectory(prefix="tm-parse-", dir=workdir) as tmp:
            if self.spec.kind == "xlsx":
                layout, batches = self._read_xlsx(path, filename)
            else:
                layout, batches = self._read_delimited(path, filename, Path(tmp), batch_bytes)
            yield from self._stream(layout, batches, filename)

    def _encoding(self, head: bytes) -> str:
        declared = self.spec.encoding
        if declared == "auto":
            return archive.detect_encoding(head)
        if declared == "utf-16":
            found = archive.detect_encoding(head) if head[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            return found or "utf-16-le"
        if declared == "utf-8":
            enc = archive.detect_encoding(head)
            if enc not in archive.UTF8:
                raise FileRejected("encoding", f"declared UTF-8 but the file looks like {enc}")
            return enc
        return declared

    def _read_delimited(
        self, path: Path, filename: str, tmp: Path, batch_bytes: int | None = None
    ) -> tuple[_Layout, Iterator[Batch]]:
        spec = self.spec
        if path.stat().st_size == 0:
            raise FileRejected("empty_file", f"{filename} is empty")
        head = archive.read_head(path)
        encoding = self._encoding(head)
        if encoding not in archive.UTF8:
            path = archive.transcode_to_utf8(path, tmp, encoding)
            head = archive.read_head(path)
        archive.check_line_length(path)
        lines = self._head_lines(head, "utf-8")
        if not any(ln.strip() for ln in lines):
            raise FileRejected("empty_file", f"{filename} holds no data")
        delim, quote = spec.delimiter, spec.quote

        if spec.header == "none":
            data_start = spec.skip_rows
            first = next((ln for ln in lines[data_start:] if ln.strip()), None)
            if first is None:
                raise FileRejected("empty_file", f"{filename} holds no data lines")
            ncols = len(_split_line(first, delim, quote))
            header = [f"column {i + 1}" for i in range(ncols)]
            index, drift = self._resolve_positions(ncols, filename)
        else:
            rows = [_split_line(ln, delim, quote) for ln in lines[: spec.header_search_lines]]
            header_idx = self._find_header(rows) if spec.header == "auto" else spec.header
            if header_idx >= len(lines):
                raise FileRejected("empty_file", f"{filename} ends before its header line")
            header = [h.strip(STRIP) for h in _split_line(lines[header_idx], delim, quote)]
            ncols = len(header)
            data_start = header_idx + 1 + spec.skip_rows
            index, drift = self._resolve_header(header, filename)

        offset = _line_offset(path, data_start)
        layout = _Layout(header, index, ncols, drift, {"encoding": encoding})
        used = sorted({i for name, i in index.items() if name in self._used})

        def batches() -> Iterator[Batch]:
            chunks = record_chunks(
                path, offset, first_line=data_start + 1, quote=quote, size=batch_bytes
            )
            for chunk, first_line, last in chunks:
                yield self._read_chunk(chunk, first_line, ncols, used, path, filename), last

        return layout, batches()

    def _read_chunk(
        self,
        chunk: bytes,
        first_line: int,
        ncols: int,
        used: list[int],
        path: Path,
        filename: str,
    ) -> pl.DataFrame:
        """One batch of records: their text cells, raw text and field counts."""
        spec = self.spec
        last, extra = ncols - 1, ncols  # the last column, and one more to catch extra fields
        cells_lf = pl.scan_csv(
            chunk,
            has_header=False,
            separator=spec.delimiter,
            quote_char=spec.quote,
            schema={f"c{i}": pl.String() for i in range(ncols + 1)},
            missing_columns="insert",
            truncate_ragged_lines=True,
            raise_if_empty=False,
            encoding="utf8",
        ).select([f"c{i}" for i in sorted({*used, last, extra})])
        raw_lf = pl.scan_lines(
            chunk, name="raw", row_index_name="line_no", row_index_offset=first_line
        )
        try:
            cells, raw = pl.collect_all([cells_lf, raw_lf])
        except pl.exceptions.ComputeError as exc:
            if "utf" in str(exc).lower():
                bad = archive.utf8_error(path)
                if bad is not None:
                    raise bad from exc
            row = self._odd_quote_line(chunk, first_line)
            if row is not None:
                raise FileRejected(
                    "malformed",
                    f"{filename}: line {row} is the first with an unbalanced quote character "
                    f'(a stray quote, as in 12" Mix?); the CSV reader said: '
                    + str(exc).splitlines()[0],
                    row=row,
                ) from exc
            hint = " (a stray quote character? a spec can say `quote: null`)" if spec.quote else ""
            raise FileRejected("malformed", f"{filename}: {exc}{hint}") from exc
        records = self._records(raw, cells.height, filename, chunk, first_line)
        # The reader pads short lines and cuts long ones: count the fields of any line that
        # lacks its last field or has one too many, so a ragged line is an error, not a guess.
        nfields = pl.repeat(ncols, cells.height, dtype=pl.Int64, eager=True).alias("nfields")
        suspect = (cells[f"c{last}"].is_null() | cells[f"c{extra}"].is_not_null()).fill_null(True)
        if suspect.any():
            idx = suspect.arg_true()
            nfields = nfields.scatter(idx, self._field_counts(records["raw"].gather(idx)))
        cells = cells.select([f"c{i}" for i in used])
        return pl.concat([records, cells, nfields.to_frame()], how="horizontal")

    def _odd_quote_line(self, chunk: bytes, first_line: int) -> int | None:
        """The first line of ``chunk`` with an odd number of quote characters: where a stray
        quote is (or where a quoted field spanning lines starts; either way, where to look)."""
        quote = self.spec.quote
        if quote is None:
            return None
        q = quote.encode()
        for i, line in enumerate(chunk.split(b"\n")):
            if line.count(q) % 2:
                return first_line + i
        return None

    def _records(
        self, raw: pl.DataFrame, expected: int, filename: str, chunk: bytes, first_line: int
    ) -> pl.DataFrame:
        """Physical lines -> records (a quoted field may span lines), aligned with the reader."""
        quote = self.spec.quote
        records = raw.with_columns(pl.col("line_no").cast(pl.Int64))
        if quote is not None and raw.height != expected:
            odd = pl.col("raw").str.count_matches(quote, literal=True) % 2 == 1
            starts = (odd.cast(pl.Int64).cum_sum().shift(1, fill_value=0) % 2) == 0
            records = (
                records.with_columns(starts.cast(pl.Int64).cum_sum().alias("_rec"))
                .group_by("_rec", maintain_order=True)
                .agg(pl.col("line_no").first(), pl.col("raw").str.join("\n"))
                .drop("_rec")
            )
        if records.height != expected:
            row = self._odd_quote_line(chunk, first_line)
            where = f"; line {row} is the first with an unbalanced quote" if row else ""
            raise FileRejected(
                "malformed",
                f"{filename}: {records.height} records in the text but the CSV reader found "
                f"{expected} (unbalanced quotes?){where}",
                row=row,
            )
        return records

    def _field_counts(self, raw: pl.Series) -> pl.Series:
        """Fields per record: delimiters outside quoted sections, plus one."""
        delim, quote = self.spec.delimiter, self.spec.quote
        counts = raw.str.count_matches(delim, literal=True)
        if quote is not None:
            quoted = raw.str.contains(quote, literal=True)
            if quoted.any():
                idx = quoted.arg_true()
                q = re.escape(quote)
                unquoted = raw.gather(idx).str.replace_all(f"{q}[^{q}]*{q}", "")
                counts = counts.scatter(idx, unquoted.str.count_matches(delim, literal=True))
        return (counts + 1).cast(pl.Int64)

    def _xlsx_frame(self, path: Path, *, n_rows: int | None = None) -> pl.DataFrame:
        import fastexcel

        try:
            reader = fastexcel.read_excel(path)
            sheet = reader.load_sheet(
                self.spec.sheet, header_row=None, dtypes="string", n_rows=n_rows
            )
            frame = sheet.to_polars()
        except Exception as exc:  # fastexcel raises its own error types for bad workbooks
            raise FileRejected("bad_xlsx", f"cannot read sheet {self.spec.sheet!r}: {exc}") from exc
        return frame.rename({c: f"c{i}" for i, c in enumerate(frame.columns)})

    def _read_xlsx(self, path: Path, filename: str) -> tuple[_Layout, Iterator[Batch]]:
        spec = self.spec
        frame = self._xlsx_frame(path)
        if frame.height == 0 or frame.width == 0:
            raise FileRejected("empty_file", f"{filename} has an empty sheet")
        cols = frame.columns
        top = [[v or "" for v in row] for row in frame.head(spec.header_search_lines).rows()]
        if spec.header == "none":
            data_start = spec.skip_rows
            ncols = len(cols)
            header = [f"column {i + 1}" for i in range(ncols)]
            index, drift = self._resolve_positions(ncols, filename)
        else:
            header_idx = self._find_header(top) if spec.header == "auto" else spec.header
            if header_idx >= frame.height:
                raise FileRejected("empty_file", f"{filename} ends before its header row")
            header = [str(h).strip(STRIP) for h in top[header_idx]]
            while header and header[-1] == "":
                header.pop()
            ncols = len(header)
            data_start = header_idx + 1 + spec.skip_rows
            index, drift = self._resolve_header(header, filename)
        text = [pl.col(c).fill_null("") for c in cols]
        data = (
            frame.with_row_index("line_no", offset=1)
            .with_columns(
                pl.col("line_no").cast(pl.Int64),
                pl.concat_str(text, separator="\t").str.replace(r"\t+$", "").alias("raw"),
                # cells beyond the header are extra fields
                pl.sum_horizontal(
                    [pl.col(c).is_not_null().cast(pl.Int64) for c in cols[ncols:]] or [pl.lit(0)]
                ).alias("_extra"),
            )
            .slice(data_start)
        )
        data = data.with_columns(
            pl.when(pl.col("_extra") > 0)
            .then(ncols + pl.col("_extra"))
            .otherwise(ncols)
            .alias("nfields")
        )
        needed = sorted({i for name, i in index.items() if name in self._used})
        keep = ["line_no", "raw", "nfields", *[f"c{i}" for i in needed]]
        layout = _Layout(header, index, ncols, drift, {"sheet": spec.sheet})
        return layout, iter([(data.select(keep), True)])

    # -- columns and drift -----------------------------------------------------------------

    def _resolve_header(self, header: list[str], filename: str) -> tuple[dict[str, int], list[str]]:
        spec = self.spec
        positions: dict[str, int] = {}
        for i, h in enumerate(header):
            positions.setdefault(column_key(h), i)
        index: dict[str, int] = {}
        drift: list[str] = []
        missing_required: list[str] = []
        for col in spec.columns:
            for label in (col.name, *col.aliases):
                if column_key(label) in positions:
                    index[col.name] = positions[column_key(label)]
                    if label != col.name:
                        drift.append(f"renamed column {col.name!r}: found as {label!r}")
                    break
            else:
                if spec.is_required(col):
                    missing_required.append(col.name)
                else:
                    drift.append(f"missing column {col.name!r}")
        if missing_required:
            raise FileRejected(
                "missing_column",
                f"{filename}: required column(s) {', '.join(map(repr, missing_required))} "
                f"missing; the header has {', '.join(map(repr, header))}",
                field=missing_required[0],
            )
        seen: set[str] = set()
        for h in header:
            key = column_key(h)
            if key in seen and h:
                drift.append(f"duplicate column {h!r}: the first one is used")
            seen.add(key)
            if key not in self._known:
                drift.append(f"unexpected column {h!r}" if h else "unexpected unnamed column")
        return index, drift

    def _resolve_positions(self, ncols: int, filename: str) -> tuple[dict[str, int], list[str]]:
        index: dict[str, int] = {}
        drift: list[str] = []
        missing_required: list[str] = []
        for col in self.spec.columns:
            pos = col.position or 0
            if pos <= ncols:
                index[col.name] = pos - 1
            elif self.spec.is_required(col):
                missing_required.append(f"{col.name} (position {pos})")
            else:
                drift.append(f"missing column {col.name!r} (position {pos})")
        if missing_required:
            raise FileRejected(
                "missing_column",
                f"{filename}: the lines have {ncols} fields; required column(s) "
                f"{', '.join(missing_required)} missing",
                field=missing_required[0],
            )
        declared = {c.position for c in self.spec.columns}
        drift += [
            f"unexpected column at position {p}" for p in range(1, ncols + 1) if p not in declared
        ]
        return index, drift

    # -- typing, rules, canonical lines ----------------------------------------------------

    def _stream(
        self, layout: _Layout, batches: Iterator[Batch], filename: str
    ) -> Iterator[ParsedFile]:
        spec = self.spec
        consts = self._filename_constants(filename)
        file_period = self._file_period(filename)
        totals = _Totals()
        held: ParsedFile | None = None  # yielded one step behind: the last one gets the meta
        in_footer = False
        for frame, last in batches:
            frame, skip = self._skip(frame, last=last, in_footer=in_footer)
            in_footer = skip.in_footer
            totals.add_skip(skip)
            if frame.height == 0:
                continue
            totals.rows += frame.height
            lines, info, errors = self._batch(frame, layout, consts, filename)
            del frame
            totals.add_lines(lines, info)
            extra: dict[str, Any] = {"spec": spec.name, "final": False}
            if info is not None:
                extra["info_lines"] = info
            meta = FileMeta(format=spec.name, service=spec.constants.get("service"), extra=extra)
            if file_period is not None:  # known from the file name: on every piece
                meta.period_start, meta.period_end, meta.reporting_period = file_period
            if held is not None:
                yield held
            held = ParsedFile(lines=lines, meta=meta, errors=errors, drift=layout.drift)
        if held is None:
            raise FileRejected("empty_file", f"{filename} holds no data lines")
        meta = held.meta
        meta.extra.update(layout.extra)
        meta.extra.update(
            final=True,
            header=layout.header,
            blank_lines=totals.blank,
            skipped_lines=totals.skipped,
        )
        if totals.info:
            meta.extra["info_totals"] = {name: str(v) for name, v in totals.info.items()}
        if file_period is not None:
            meta.period_start, meta.period_end, meta.reporting_period = file_period
        else:
            meta.period_start, meta.period_end = totals.period()
        self._control_totals(meta, totals.trailer, totals.currencies, totals.rows)
        yield held

    def _skip(
        self, frame: pl.DataFrame, *, last: bool, in_footer: bool
    ) -> tuple[pl.DataFrame, _Skip]:
        """Drop lines that are not data (blank, ignored, footer); count and name them."""
        spec = self.spec
        raw = frame["raw"]
        blank = self._blank(raw)
        reasons: dict[str, pl.Series] = {}
        if spec.ignore_pattern:
            reasons["ignored"] = raw.str.contains(spec.ignore_pattern) & ~blank
        if spec.footer.pattern or spec.footer.lines:
            footer = pl.repeat(in_footer, raw.len(), eager=True)
            if spec.footer.pattern:
                matches = raw.str.contains(spec.footer.pattern) & ~blank
                if not in_footer:
                    hits = matches.arg_true()
                    if hits.len():
                        footer = pl.int_range(0, raw.len(), eager=True) >= hits[0]
                        in_footer = True
                # The footer is the file's end: a data line after it (a subtotal in the
                # middle of a statement) would otherwise be dropped as footer, unread.
                after = footer & ~matches & ~blank
                if "ignored" in reasons:
                    after = after & ~reasons["ignored"]
                if after.any():
                    row = int(frame["line_no"].filter(after)[0])
                    raise FileRejected(
                        "data_after_footer",
                        f"line {row} follows the closing total line(s); a total may only end "
                        "the file (split a statement with subtotals into one file per part)",
                        row=row,
                    )
            if spec.footer.lines and last:
                rank = (~blank).cast(pl.Int64).cum_sum(reverse=True)
                footer = footer | (rank <= spec.footer.lines)
            reasons["footer"] = footer & ~blank
        skip = blank
        for mask in reasons.values():
            skip = skip | mask
        out = _Skip(blank=int(blank.sum()), in_footer=in_footer)
        out.lines = {
            name: frame["line_no"].filter(mask).to_list() for name, mask in reasons.items()
        }
        if skip.any():
            out.trailer = raw.filter(skip & ~blank).to_list()
            frame = frame.filter(~skip)
        return frame, out

    def _batch(
        self, frame: pl.DataFrame, layout: _Layout, consts: Mapping[str, Any], filename: str
    ) -> tuple[pl.DataFrame, pl.DataFrame | None, list[RowError]]:
        """Canonical lines, info columns and row errors for one batch of data lines."""
        plan = _Plan(self.spec, layout.index)
        # hash first, then let go of the raw text: it is the widest column
        hashes = sha256_hex(frame["raw"])
        cleaned = plan.prepare(frame.drop("raw"))
        del frame
        checks = plan.checks(layout.ncols)
        flag_names = [f"_e{i}" for i in range(len(checks))]
        typed = (
            cleaned.lazy()
            .with_columns(plan.typed())
            .with_columns(
                # a line with the wrong number of fields gets that error alone: its other
                # cells are shifted and their errors would be noise
                [
                    (c.flag.fill_null(False) & (i == 0 or pl.col("nfields") == layout.ncols)).alias(
                        n
                    )
                    for i, (c, n) in enumerate(zip(checks, flag_names, strict=True))
                ]
            )
            .with_columns(pl.any_horizontal(flag_names).alias("_bad"))
            .collect()
        )
        del cleaned
        errors: list[RowError] = []
        bad_rows = typed["_bad"]
        if bad_rows.any():
            bad = typed.filter(bad_rows)
            errors_df = pl.concat(
                [
                    bad.filter(pl.col(n)).select(
                        pl.col("line_no"),
                        pl.lit(c.field, pl.String).alias("field"),
                        pl.lit(c.code).alias("code"),
                        c.message.alias("message"),
                    )
                    for c, n in zip(checks, flag_names, strict=True)
                ],
                how="vertical",
            ).sort("line_no", maintain_order=True)
            bad_hashes = dict(zip(bad["line_no"], hashes.filter(bad_rows), strict=True))
            errors = [
                RowError(filename, row, fld, code, msg, raw_hash=bad_hashes.get(row))
                for row, fld, code, msg in errors_df.iter_rows()
            ]
            typed = typed.filter(~bad_rows)
            hashes = hashes.filter(~bad_rows)
        built = plan.normalise(typed.lazy().select(plan.fields(consts)).collect())
        lines = conform(built.with_columns(hashes.alias("raw_hash")), PARSED).collect()
        info_exprs = plan.info_columns()
        info = (
            typed.select(pl.col("line_no"), *[e.alias(n) for n, e in info_exprs.items()])
            if info_exprs
            else None
        )
        return lines, info, errors

    def _control_totals(
        self, meta: FileMeta, trailer: list[str], currencies: set[str], rows: int
    ) -> None:
        """The file's own figures from its trailer lines: its line count checked against the
        data lines read (``rows``, readable or not), its amount kept for reconciliation
        downstream."""
        ct = self.spec.control_totals
        found: dict[str, str] = {}
        for key, pattern in (("amount", ct.amount), ("lines", ct.lines)):
            if pattern is None:
                continue
            match = next((m for t in trailer if (m := re.search(pattern, t))), None)
            if match is None:
                meta.extra.setdefault("control_totals_missing", []).append(key)
            else:
                found[key] = match.group(1).strip()
        if "lines" in found:
            text = found["lines"].replace(self.spec.number_format.thousands or ",", "")
            if not text.isdigit():
                raise FileRejected(
                    "invalid_control_total", f"the file's line count {found['lines']!r}"
                )
            meta.declared_lines = int(text)
            if meta.declared_lines != rows:
                raise FileRejected(
                    "control_count_mismatch",
                    f"the file declares {meta.declared_lines} data lines; {rows} were read "
                    "(lines lost or added on the way?)",
                )
        if "amount" in found:
            nf = self.spec.number_format
            text = found["amount"]
            if nf.thousands:
                text = text.replace(nf.thousands, "")
            if nf.decimal == ",":
                text = text.replace(",", ".")
            if nf.parentheses_negative and text.startswith("(") and text.endswith(")"):
                text = "-" + text[1:-1]
            try:
                total = Decimal(text)
            except InvalidOperation as exc:
                raise FileRejected(
                    "invalid_control_total", f"the file's total amount {found['amount']!r}"
                ) from exc
            if not total.is_finite():  # NaN, sNaN, Infinity: text Decimal accepts
                raise FileRejected(
                    "invalid_control_total", f"the file's total amount {found['amount']!r}"
                )
            if len(currencies) == 1:
                meta.declared_totals = {next(iter(currencies)): total}
            else:
                meta.extra["declared_amount"] = str(total)

    def _blank(self, raw: pl.Series) -> pl.Series:
        """Lines with nothing but spaces, delimiters and quotes (empty spreadsheet rows)."""
        blank = raw.str.len_bytes() == 0
        kind_of_empty = raw.str.starts_with(" ") | raw.str.starts_with("\t")
        if self.spec.kind == "delimited":
            kind_of_empty = kind_of_empty | raw.str.starts_with(self.spec.delimiter)
            if self.spec.quote:
                kind_of_empty = kind_of_empty | raw.str.starts_with(self.spec.quote)
        if kind_of_empty.any():
            chars = re.escape(" \t\r" + self.spec.delimiter + (self.spec.quote or ""))
            idx = kind_of_empty.arg_true()
            blank = blank.scatter(idx, raw.gather(idx).str.contains(f"^[{chars}]*$"))
        return blank.fill_null(False)

    def _filename_constants(self, filename: str) -> dict[str, Any]:
        """Values the file name supplies: currency, usage dates."""
        spec = self.spec
        base = re.split(r"[\\/]", filename)[-1]
        out: dict[str, Any] = {}
        if spec.currency and spec.currency.filename:
            out["currency"] = _group(spec.currency.filename, base, "currency").upper()
        rules = spec.date_rules
        for key in ("usage_start", "usage_end", "usage_period"):
            src = getattr(rules, key)
            if src is not None and src.filename:
                day = _parse_date(_group(src.filename, base, key), src.format, key)
                out[key] = _span_bounds(day, src.span)
        return out

    def _file_period(self, filename: str) -> tuple[dt.date, dt.date, str | None] | None:
        """The period the file name declares, when the spec says where to find it, and its
        reporting month (``YYYY-MM``) when that is not the month it ends in: a fiscal month
        (Apple's fiscal July 2026 runs from 28 June to 1 August)."""
        src = self.spec.date_rules.file_period
        if src is None or src.filename is None:
            return None
        base = re.split(r"[\\/]", filename)[-1]
        if src.optional and re.search(src.filename, base) is None:
            return None  # renamed: the period is the span of the lines' dates
        day = _parse_date(_group(src.filename, base, "file_period"), src.format, "file_period")
        if src.calendar == "apple_fiscal":
            start, end = apple_fiscal_month(day.year, day.month)
            return start, end, f"{day.year:04d}-{day.month:02d}"
        return (*_span_bounds(day, src.span), None)


@dataclass
class _Totals:
    """File-level figures gathered batch by batch."""

    blank: int = 0
    rows: int = 0  # data lines (records), readable or not
    skipped: dict[str, list[int]] = field(default_factory=dict)
    trailer: list[str] = field(default_factory=list)
    currencies: set[str] = field(default_factory=set)
    info: dict[str, Any] = field(default_factory=dict)
    # usage span of regular lines (no adjustment_type), and of all lines
    regular: list[dt.date | None] = field(default_factory=lambda: [None, None])
    every: list[dt.date | None] = field(default_factory=lambda: [None, None])

    def add_skip(self, skip: _Skip) -> None:
        self.blank += skip.blank
        self.trailer += skip.trailer
        for reason, rows in skip.lines.items():
            self.skipped.setdefault(reason, []).extend(rows)

    def add_lines(self, lines: pl.DataFrame, info: pl.DataFrame | None) -> None:
        regular = pl.col("adjustment_type").is_null()
        row = lines.select(
            pl.col("usage_start").filter(regular).min().alias("r0"),
            pl.col("usage_end").filter(regular).max().alias("r1"),
            pl.col("usage_start").min().alias("a0"),
            pl.col("usage_end").max().alias("a1"),
            pl.col("currency").drop_nulls().unique().implode().alias("cur"),
        ).row(0, named=True)
        self.regular = [_min(self.regular[0], row["r0"]), _max(self.regular[1], row["r1"])]
        self.every = [_min(self.every[0], row["a0"]), _max(self.every[1], row["a1"])]
        self.currencies.update(row["cur"])
        if info is not None:
            for name in info.columns[1:]:
                if info[name].dtype.is_numeric():
                    self.info[name] = self.info.get(name, 0) + (info[name].sum() or 0)

    def period(self) -> tuple[dt.date | None, dt.date | None]:
        """Span of the regular lines; of all lines when there are only adjustments."""
        start, end = self.regular
        if start is None and end is None:
            start, end = self.every
        return start, end


def _min(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    return b if a is None else a if b is None else max(a, b)


# ---------------------------------------------------------------------------------------------
# the expressions a spec turns into


@dataclass
class _Check:
    flag: pl.Expr
    field: str | None
    code: str
    message: pl.Expr


def _msg(*parts: str | pl.Expr) -> pl.Expr:
    return pl.concat_str(
        [p if isinstance(p, pl.Expr) else pl.lit(p) for p in parts], ignore_nulls=True
    )


class _Plan:
    """The Polars work for one spec over one file's column positions.

    Text cleaning runs column by column with cheap vectorised probes (does any value need
    trimming? any thousands separator?) and fixes only the rows that need it; comparisons that
    ignore case run on a column's distinct values. Everything else is expressions.
    """

    MAX_DISTINCT = 10_000  # above this, case-insensitive work runs on every row instead

    def __init__(self, spec: FormatSpec, index: Mapping[str, int]) -> None:
        self.spec = spec
        self.index = dict(index)
        used = spec.used_columns()
        self.used = [c for c in spec.columns if c.name in used]
        self.present = [c for c in self.used if c.name in self.index]
        self.key = {c.name: f"k{i}" for i, c in enumerate(spec.columns)}
        self._date_sources = {
            k: src
            for k in ("usage_start", "usage_end", "usage_period")
            if (src := getattr(spec.date_rules, k)) is not None and src.column is not None
        }
        self._allowed: dict[str, pl.Expr] = {}  # column -> flag for unexpected values
        self._conditions: list[pl.Expr] = []  # per sign rule
        self._distinct: dict[str, pl.Series] = {}  # date text column -> its distinct values

    # -- stage 1 (eager): "s<k>" trimmed text or null, "n<k>" number text ------------------

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        globals_ = list(self.spec.null_values)
        sources = {"s" + self.key[c.name]: frame[f"c{self.index[c.name]}"] for c in self.present}
        cleaned = _clean_texts(
            pl.DataFrame(sources),
            {"s" + self.key[c.name]: [*globals_, *c.null_values] for c in self.present},
            # a tab cannot pad a cell when it is the delimiter
            pads=" " if self.spec.kind == "delimited" and self.spec.delimiter == "\t" else " \t",
        )
        out: dict[str, pl.Series] = {"line_no": frame["line_no"], "nfields": frame["nfields"]}
        for col in self.used:
            k = self.key[col.name]
            if col.name not in self.index:
                out["s" + k] = pl.Series("s" + k, [None] * frame.height, dtype=pl.String)
                continue
            value = cleaned["s" + k]
            out["s" + k] = value
            if col.kind in ("decimal", "integer"):
                number = self._number_text(value)
                if col.kind == "integer":  # 12.0 from a spreadsheet is 12
                    number = _fix_rows(
                        number, number.str.ends_with(".0"), lambda x: x.str.strip_suffix(".0")
                    )
                out["n" + k] = number.alias("n" + k)
        for rule, src in self._date_sources.items():
            assert src.column is not None
            if src.column in self.index:
                out[f"n_{rule}"] = out["s" + self.key[self.spec.column(src.column).name]]
        prepared = pl.DataFrame([v.alias(k) for k, v in out.items()])
        dated = [f"n_{rule}" for rule in self._date_sources if f"n_{rule}" in prepared.columns]
        dated += ["s" + self.key[c.name] for c in self.present if c.kind == "date"]
        for date_col in dated:  # a report has few distinct dates: each parsed once (``_mapped``)
            distinct = prepared[date_col].drop_nulls().unique()
            if distinct.len() <= self.MAX_DISTINCT:
                self._distinct[date_col] = distinct
        for col in self.present:
            if col.allowed:
                s = prepared["s" + self.key[col.name]]
                wanted = {a.strip().casefold() for a in col.allowed}
                ok = _matching_values(s, lambda v, w=wanted: v.casefold() in w)  # type: ignore[misc]
                name = pl.col(s.name)
                self._allowed[col.name] = (
                    name.is_not_null() & ~name.is_in(ok)
                    if ok is not None
                    else name.is_not_null() & ~name.str.to_lowercase().is_in(list(wanted))
                )
        for sign_rule in self.spec.sign_rules:
            self._conditions.append(self._condition(sign_rule.when, prepared))
        return prepared

    def _number_text(self, s: pl.Series) -> pl.Series:
        nf = self.spec.number_format
        if nf.thousands:
            # Separators are dropped only from numbers grouped in threes ("1,234,567.89");
            # anything else ("12,34", "1.234,56" in a point-decimal layout, "1,2,3") keeps
            # them and fails as an unparseable amount, rather than being read as another number.
            t, d = re.escape(nf.thousands), re.escape(nf.decimal)
            grouped = rf"^[+-]?\(?[+-]?\d{{1,3}}(?:{t}\d{{3}})+(?:{d}\d*)?\)?-?$"
            s = _fix_rows(
                s,
                s.str.contains(nf.thousands, literal=True),
                lambda x: x.str.replace_all(nf.thousands or "", "", literal=True).zip_with(
                    x.str.contains(grouped), x
                ),
            )
        if nf.decimal == ",":
            s = s.str.replace(",", ".", literal=True)
        if nf.parentheses_negative:
            s = _fix_rows(s, s.str.starts_with("("), lambda x: x.str.replace(r"^\((.*)\)$", "-$1"))
        return s

    def s(self, column: str) -> pl.Expr:
        return pl.col("s" + self.key[self.spec.column(column).name])

    def _condition(self, cond: Condition, cleaned: pl.DataFrame) -> pl.Expr:
        s = cleaned["s" + self.key[self.spec.column(cond.column).name]]
        col = pl.col(s.name)
        if cond.matches is not None:
            return col.str.contains(cond.matches).fill_null(False)
        wanted = (
            {cond.equals.strip().casefold()}
            if cond.equals is not None
            else {v.strip().casefold() for v in cond.in_ or []}
        )
        ok = _matching_values(s, lambda v: v.casefold() in wanted)
        if ok is None:
            return col.str.to_lowercase().is_in(list(wanted)).fill_null(False)
        return col.is_in(ok).fill_null(False)

    # -- stage 2 (expressions): "t<k>" typed columns, "d_<rule>" dates ----------------------

    def _cast(self, expr: pl.Expr, kind: ColumnType, formats: list[str]) -> pl.Expr:
        if kind == "decimal":
            # No exponents ("1e3", "2.5E-13"): report amounts are written out, and a cast would
            # otherwise read them as 1000 and 0 without a word.
            return (pl.when(expr.str.contains("[eE]")).then(pl.lit(None)).otherwise(expr)).cast(
                AMOUNT, strict=False
            )
        if kind == "integer":
            return expr.cast(pl.Int64, strict=False)
        if kind == "date":
            # strptime patterns or named forms (month names, US/ISO dates): the one reader
            # of report dates. A year outside 1900-2100 is a misread ("12/28/25" read with
            # %Y is the year 25), so the next format may still read it.
            return parse_date_expr(expr, formats)
        return expr

    def _mapped(self, column: str, build: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
        """``build(pl.col(column))``, a Date: computed once per distinct value of ``column``
        (when ``prepare`` listed them) and looked up per line, else computed per line. Parsing
        a date with two formats and finding its month's bounds costs far more than a lookup."""
        old = self._distinct.get(column)
        if old is None:
            return build(pl.col(column))
        new = old.to_frame(column).select(build(pl.col(column))).to_series()
        return pl.col(column).replace_strict(old, new, default=None, return_dtype=pl.Date)

    def typed(self) -> list[pl.Expr]:
        out = []
        for col in self.present:
            if col.kind == "date":
                k, fmt = self.key[col.name], col.format
                cast = partial(self._cast, kind="date", formats=fmt)
                out.append(self._mapped("s" + k, cast).alias("t" + k))
            elif col.kind != "string":
                k = self.key[col.name]
                src = pl.col(("n" if col.kind in ("decimal", "integer") else "s") + k)
                out.append(self._cast(src, col.kind, col.format).alias("t" + k))
        for rule, src in self._date_sources.items():
            if src.column in self.index:
                cast = partial(self._cast, kind="date", formats=src.format)
                name = f"n_{rule}"
                out += [
                    self._mapped(name, cast).alias("d_" + rule),
                    # the span's first and last day, for ``fields``
                    self._mapped(name, partial(_span_of, cast, _span_start, src.span)).alias(
                        "ds_" + rule
                    ),
                    self._mapped(name, partial(_span_of, cast, _span_end, src.span)).alias(
                        "de_" + rule
                    ),
                ]
        return out

    def checks(self, ncols: int) -> list[_Check]:
        out = [
            _Check(
                pl.col("nfields") != ncols,
                None,
                "field_count",
                _msg("the line has ", pl.col("nfields").cast(pl.String), f" fields, not {ncols}"),
            )
        ]
        nouns = {"decimal": "a number", "integer": "a whole number", "date": "a date"}
        for col in self.present:
            k = self.key[col.name]
            s = pl.col("s" + k)
            label = col.field or col.name
            too_big = pl.lit(False)
            if col.kind == "decimal":
                # Decimal(38, 12) holds 26 digits before the point and 12 after: anything
                # more is refused as written, never rounded or cut (the cast would do both)
                n, t = pl.col("n" + k), pl.col("t" + k)
                too_big = n.str.contains(_TOO_BIG_RE).fill_null(False) & t.is_null()
                out.append(
                    _Check(
                        t.is_not_null() & n.str.contains(_TOO_PRECISE_RE).fill_null(False),
                        label,
                        "amount_too_precise",
                        _msg(
                            f"column {col.name!r}: '",
                            s,
                            f"' has more than {AMOUNT_SCALE} decimal places (never rounded)",
                        ),
                    )
                )
                out.append(
                    _Check(
                        too_big,
                        label,
                        "amount_out_of_range",
                        _msg(
                            f"column {col.name!r}: '",
                            s,
                            f"' has more than {AMOUNT_DIGITS} digits before the decimal point",
                        ),
                    )
                )
            if col.kind != "string":
                fmt = f" ({' or '.join(col.format)})" if col.kind == "date" else ""
                out.append(
                    _Check(
                        s.is_not_null() & pl.col("t" + k).is_null() & ~too_big,
                        label,
                        f"invalid_{col.kind}",
                        _msg(f"column {col.name!r}: '", s, f"' is not {nouns[col.kind]}{fmt}"),
                    )
                )
            if col.not_null:
                out.append(
                    _Check(
                        s.is_null(), label, "missing_value", _msg(f"column {col.name!r} is empty")
                    )
                )
            if col.name in self._allowed:
                out.append(
                    _Check(
                        self._allowed[col.name],
                        label,
                        "unexpected_value",
                        _msg(f"column {col.name!r}: '", s, f"' is not one of {col.allowed}"),
                    )
                )
        for rule, src in self._date_sources.items():
            assert src.column is not None
            if src.column not in self.index:
                continue
            s = self.s(src.column)
            fld = "usage_start" if rule == "usage_period" else rule
            out.append(
                _Check(
                    s.is_not_null() & pl.col("d_" + rule).is_null(),
                    fld,
                    "invalid_date",
                    _msg(
                        f"column {src.column!r}: '",
                        s,
                        f"' is not a date ({' or '.join(src.format)})",
                    ),
                )
            )
        return out

    # -- stage 3: canonical fields ---------------------------------------------------------

    def value(self, column: str) -> pl.Expr:
        col = self.spec.column(column)
        k = self.key[col.name]
        if col.name in self.index and col.kind != "string":
            return pl.col("t" + k)
        return pl.col("s" + k)

    def fields(self, consts: Mapping[str, Any]) -> list[pl.Expr]:
        spec = self.spec
        out: dict[str, pl.Expr] = {"line_no": pl.col("line_no")}
        for col in spec.columns:
            if col.field:
                out[col.field] = self.value(col.name)
        for id_field, id_columns in spec.identifiers.items():
            exprs = [self.s(c) for c in id_columns]
            out[id_field] = exprs[0] if len(exprs) == 1 else pl.coalesce(exprs)
        for const, value in spec.constants.items():
            out[const] = pl.lit(value, pl.String)
        if spec.currency is not None:
            if spec.currency.column:
                out["currency"] = self.s(spec.currency.column)
            elif spec.currency.value:
                out["currency"] = pl.lit(spec.currency.value, pl.String)
            else:
                out["currency"] = pl.lit(consts["currency"], pl.String)
        rules = spec.date_rules
        for key in ("usage_period", "usage_start"):
            src = getattr(rules, key)
            if src is None:
                continue
            if src.column:
                out["usage_start"] = pl.col("ds_" + key)
                out["usage_end"] = pl.col("de_" + key)
            else:
                start, end = consts[key]
                out["usage_start"], out["usage_end"] = pl.lit(start), pl.lit(end)
        if rules.usage_end is not None:
            src = rules.usage_end
            if src.column:
                out["usage_end"] = pl.col("de_usage_end")
            else:
                out["usage_end"] = pl.lit(consts["usage_end"][1])
        if "usage_start" in out and "usage_end" not in out:
            out["usage_end"] = out["usage_start"]
        for sign_rule, cond in zip(spec.sign_rules, self._conditions, strict=True):
            for signed in sign_rule.fields:
                if signed in out:
                    cur = out[signed]
                    flipped = -cur.abs() if sign_rule.action == "negative" else -cur
                    out[signed] = pl.when(cond).then(flipped).otherwise(cur)
        return [e.alias(f) for f, e in out.items()]

    def normalise(self, lines: pl.DataFrame) -> pl.DataFrame:
        """Upper-case codes and value maps, on the lines (identifiers: ``registry``)."""
        cols: list[pl.Series] = []
        maps = self.spec.maps()
        for fld in sorted({"currency", "territory", *maps} & set(lines.columns)):
            mapping = maps.get(fld, {})
            upper = fld in ("currency", "territory")
            cols.append(_map_values(lines[fld], mapping, upper=upper))
        return lines.with_columns(cols) if cols else lines

    def info_columns(self) -> dict[str, pl.Expr]:
        return {
            c.name: (self.value(c.name) if c.name in self.index else pl.lit(None))
            for c in self.spec.columns
            if c.info
        }


def _fix_rows(s: pl.Series, mask: pl.Series, fix: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """``s`` with ``fix`` applied to the rows where ``mask`` holds (only those are touched)."""
    mask = mask.fill_null(False)
    if not mask.any():
        return s
    idx = mask.arg_true()
    return s.scatter(idx, fix(s.gather(idx)))


def _clean_texts(
    cells: pl.DataFrame, null_values: Mapping[str, list[str]], *, pads: str = " \t"
) -> pl.DataFrame:
    """Trimmed text; empty and null-token cells become null. Probes every column in one pass
    for cells starting or ending with one of ``pads`` and rewrites only the columns that need
    it (trimming all whitespace there)."""
    if cells.width == 0:
        return cells

    def padded(c: str) -> pl.Expr:
        probes = [
            p for ch in pads for p in (pl.col(c).str.starts_with(ch), pl.col(c).str.ends_with(ch))
        ]
        return pl.any_horizontal(probes).fill_null(False).any()

    probes = cells.select(
        *[padded(c).alias("pad_" + c) for c in cells.columns],
        *[(pl.col(c).str.len_bytes() == 0).any().alias("empty_" + c) for c in cells.columns],
    ).row(0, named=True)
    fixes: list[pl.Expr] = []
    for c in cells.columns:
        expr = pl.col(c)
        changed = False
        if probes["pad_" + c]:
            expr, changed = expr.str.strip_chars(), True
        nulls = [v for v in null_values.get(c, []) if v]
        if probes["empty_" + c] or probes["pad_" + c] or nulls:
            expr = pl.when(expr.str.len_bytes() == 0).then(None).otherwise(expr)
            if nulls:
                expr = pl.when(expr.is_in(nulls)).then(None).otherwise(expr)
            changed = True
        if changed:
            fixes.append(expr.alias(c))
    return cells.with_columns(fixes) if fixes else cells


def _matching_values(s: pl.Series, test: Callable[[str], bool]) -> list[str] | None:
    """The distinct values of ``s`` passing ``test`` (None if there are too many to list)."""
    distinct = s.drop_nulls().unique()
    if distinct.len() > _Plan.MAX_DISTINCT:
        return None
    return [v for v in distinct.to_list() if test(v)]


def _map_values(s: pl.Series, mapping: Mapping[str, str], *, upper: bool) -> pl.Series:
    """Map values ignoring case (keys are case-folded); unmapped values kept (upper-cased if
    ``upper``)."""
    distinct = s.drop_nulls().unique()
    if distinct.len() > _Plan.MAX_DISTINCT:
        base = s.str.to_uppercase() if upper else s
        if not mapping:
            return base
        keys = list(mapping)
        return base.str.to_lowercase().replace_strict(
            keys, [mapping[k] for k in keys], default=base, return_dtype=pl.String
        )
    old, new = [], []
    for v in distinct.to_list():
        target = mapping.get(v.strip().casefold(), v.upper() if upper else v)
        if target != v:
            old.append(v)
            new.append(target)
    return s.replace(old, new) if old else s
