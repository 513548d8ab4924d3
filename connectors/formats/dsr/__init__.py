"""DDEX DSR flat-file parser (Digital Sales Report Message Suite, tab-separated flat files).

One local, already decompressed DSR file -> one ``ParsedFile`` with one PARSED line per
sales/usage record. Supported (``LAYOUTS``):

* ``BasicAudioProfile`` 1.0, 1.1 and 1.2, multi-record block variant: ``HEAD``, summary records
  ``SY01``/``SY02``/``SY04``/``SY05`` (1.0: ``SY01``/``SY02``/``SY03``, SY03 read like SY02;
  1.2 also ``SY06``), blocks of ``RE01``/``RE02`` (releases),
  ``AS01``/``AS02`` (resources), ``MW01`` (works, read for block counts only), ``SU01``
  (downloads: Usages - Returns) and ``SU02`` (streams: NumberOfStreams), ``FOOT``.
* ``BasicAudioProfile`` 1.2 single-record variant: ``HEAD`` (``SRHE``), summaries, ``SR01``
  (downloads) / ``SR02`` (streams) carrying release, resource and usage in one line, ``SRFO``.
* ``UgcProfile`` 1.0, 1.1 (= 1.1.1) and 1.2, block variant (1.0: ``SY02``/``SY03``
  summaries): ``SU03`` (usages and the record's own
  NetRevenue) with its resource ``AS01``/``AS02`` in the block; a ``SU03`` without a
  SummaryRecordId takes the one of the ``LI01`` records that follow it; ``RU01``/``RU02``
  (UGC video lists) and ``MW01`` are read for block counts only. ``UgcProfile`` 1.2
  single-record variant: ``SR03`` (own NetRevenue when given) and ``SR06``.

Record types are written with their record version (``SY02.02``, ``AS01.01``; 1.0 files have
none: ``SY02``, ``AS02``, ``MW01``); a record whose
version differs from the profile's (``SY02.01`` in a 1.2 file) is read with the profile's layout
and reported as drift. An unknown record type is a row error.

**Lines.** ``line_no`` is the physical, 1-based line number; ``raw_hash`` is the SHA-256 of the
line's text as written (UTF-8, without its ``\\n`` / ``\\r\\n`` terminator). FOOT
``NumberOfLinesInFile`` (SRFO ``NumberOfLinesInReport``) counts *every* line of the file: HEAD,
summary, block and footer records, plus empty lines (DSR Part 1, clause 7.6) and ``#`` lines
(records to be ignored, clause 7.7: the comment lines naming cells). It is checked against the
number of physical lines; ``NumberOfSummaryRecords`` against the ``SY`` records and
``NumberOfBlocksInFile`` against the distinct BlockIds. Any mismatch rejects the file
(``foot_mismatch``); a file without HEAD or footer is rejected (``missing_head`` /
``missing_foot``: truncated).

**Amounts.** The revenue sits on the summary records. Each summary's revenue base
``R`` (AllocatedNetRevenue when the record carries one, i.e. the recipient's share in SY02/SY05,
else NetRevenue; currency CurrencyOfReporting) is spread over the usage lines that point to it,
pro rata to their units, in integer units of 10^-12 (the scale of ``schemas.revenue.AMOUNT``) by
the largest-remainder method: every line gets ``floor(R * w / D)``, the residue goes one unit at a
time to the largest remainders (ties: the earlier line), so a summary's lines sum *exactly* to
``R`` and no line is more than one unit off its exact share. ``D`` is the sum of the units of the
summary's lines in the file (lines rejected for another reason keep their share out, so the gap
shows in reconciliation). Multi-file reports (``x of y`` with y > 1; file names
``..._1of2_...``, ``..._2of2_...``) are
ingested file by file: each has its own HEAD and FOOT, checked on its own (lines, summaries and
blocks in *that* file), and each file's lines are complete without its sibling. They repeat
the same summary records in every file (Part 1, clause 6.3), so there ``D`` is the summary's
declared usage count
(AllocatedUsages, else Usages) and each file carries its own share; ``declared_totals`` is then
the file's share and ``extra["report_declared_totals"]`` the report's. Usage records that carry
their own revenue (UGC ``SU03``, ``SR03``) keep it.

Other columns: ``territory``, ``commercial_model`` (``COMMERCIAL_MODELS``) and ``currency`` come
from the summary record; ``usage_type`` from the record type (SU01/SR01 download, SU02/SR02
stream, SU03/SR03/SR06 ugc); ``quantity`` is the line's units; ``service`` is HEAD SenderName;
identifiers come from the line's RE01/RE02 and AS01/AS02 records (block variant) or the record
itself (single-record variant). ``FileMeta.extra`` carries the profile, the summaries (revenue,
declared and reported usages), usage-count mismatches and the line counts.

**Speed.** No Python loop per line: Polars' line reader (raw text, for the hash) and CSV reader
(only the cells usage records need, counts straight to Int64) run over the file in one query;
references are resolved by integer joins on 64-bit hashes of (BlockId, reference), verified by a
second hash; the allocation is integer arithmetic (Int64, Int128 when the magnitudes need it)
per summary; SHA-256 runs in the polars-hash plugin. Identifier columns are gathered once,
into the output (as written: the registry normalises them, ``schemas.identifiers``).

**Modules.** One parse of one file is a ``_Run``, built in layers, each a module:
``layouts`` (record layouts, constants, cell helpers) -> ``reading`` (first and last records,
lines by kind, pieces) -> ``header`` (HEAD, structure, FOOT, summary records) -> ``allocation``
(each summary's plan) -> ``rejects`` (a ``RowError`` per rejected line) -> this module (the
parse itself, usage records resolved against their blocks, the largest-remainder split and the
PARSED lines).
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Final

import polars as pl

from connectors.formats import archive
from connectors.formats.base import (
    FileMeta,
    ParsedFile,
    RowError,
    register,
    sha256_hex,
)
from connectors.formats.dsr.allocation import _amount, _Plan
from connectors.formats.dsr.header import _Summary
from connectors.formats.dsr.layouts import (
    _AS,
    _DEC_RE,
    _ERR,
    _LONG_FRACTION_RE,
    _RE01,
    _RE02,
    FILENAME_RE,
    FORMAT,
    IDENTIFIERS,
    LAYOUTS,
    Layout,
    _basename,
    _cells,
    _decimal_units,
    _family,
    _first_record,
    _height,
    _Picker,
    _resplit,
    _usage_type,
)
from connectors.formats.dsr.reading import _Parts, _Spilled
from connectors.formats.dsr.rejects import _Rejects
from schemas.money import largest_remainder
from schemas.report_dates import iso_period
from schemas.revenue import AMOUNT, PARSED

__all__ = ["FORMAT", "LAYOUTS", "DsrParser", "iso_period"]


class DsrParser:
    """``Parser`` for DDEX DSR flat files (see the module docstring)."""

    name = FORMAT

    def sniff(self, filename: str, head: bytes) -> float:
        score = 0.6 if FILENAME_RE.match(_basename(filename)) else 0.0
        text = head.decode("utf-8", errors="replace")
        if len(head) == archive.HEAD_BYTES and "\n" in text:
            text = text[: text.rindex("\n")]  # drop a partial last line
        first = _first_record(text)
        if first is not None and first[1][0] in ("HEAD", "SRHE"):
            cells = first[1]
            profiled = len(cells) > 3 and (cells[1].startswith("dsrf/") or "Profile" in cells[2])
            score += 0.9 if profiled else 0.4
        return min(score, 1.0)

    def parse(self, path: Path, filename: str) -> ParsedFile:
        return _Run(path, filename).parse()

    def parse_batches(
        self, path: Path, filename: str, *, batch_bytes: int | None = None
    ) -> Iterator[ParsedFile]:
        """The file's usage lines in pieces of about ``batch_bytes`` of text (see
        ``_Run.parse_batches``); a file smaller than about 1.5 pieces is parsed whole."""
        if batch_bytes is None or path.stat().st_size < batch_bytes + batch_bytes // 2:
            yield self.parse(path, filename)
            return
        yield from self._batches(path, filename, batch_bytes)

    def _batches(self, path: Path, filename: str, batch_bytes: int) -> Iterator[ParsedFile]:
        """Always in pieces (``parse_batches`` parses small files whole)."""
        return _Run(path, filename).parse_batches(batch_bytes)


class _Run(_Rejects):
    """One parse of one file: reading, usage records, allocation and output, in order."""

    # ----------------------------------------------------------------------------------------
    def parse(self) -> ParsedFile:
        layouts, footer_code, variant, meta, cells = self._begin()
        usage_rows, rest, n_lines = self._read(*cells)
        parts = self._partition(usage_rows, rest, layouts, variant)
        del usage_rows, rest
        kinds = parts.kinds
        self._structure(parts, n_lines)
        self._unknown_records(kinds.get("unknown"))
        summaries = self._summaries(kinds.get("summary"))
        blocks = parts.blocks
        self._check_footer(kinds, layouts, footer_code, n_lines, len(summaries), blocks, meta)

        lean, idents = self._usage(parts)
        meta.extra.update(
            {
                "lines_in_file": n_lines,
                "comment_lines": _height(kinds.get("comment")),
                "blank_lines": _height(kinds.get("blank")),
                "summary_records": len(summaries),
                "blocks": blocks,
                "usage_records": lean.height,
            }
        )
        # only the lean usage frame is needed from here: let the rest go before the output
        # (the largest allocation) is built
        parts.lean, parts.kinds = lean, {}
        del lean, kinds
        lines = self._lines(parts, idents, summaries, meta)
        self.errors.sort(key=lambda e: (e.row or 0, e.field or ""))
        meta.extra.update(self.extra)
        return ParsedFile(lines=lines, meta=meta, errors=self.errors, drift=self.drift)

    # ----------------------------------------------------------------------------------------
    # chunked parsing (bounded memory)

    def parse_batches(self, batch_bytes: int) -> Iterator[ParsedFile]:
        """The same lines, amounts and errors as ``parse``, in pieces, in bounded memory:

        1. the records other than usage records (HEAD, summaries, the blocks' release and
           resource records, FOOT: about a tenth of a file) are read whole by the line reader
           alone, and checked as ``parse`` checks them (structure, FOOT counts, summaries);
           a FOOT mismatch is found here, before any piece is handed out;
        2. the usage records are parsed in pieces of about ``batch_bytes`` (cut just before a
           usage record, so a UGC SU03 and its LI01 records stay together), each resolved
           against the whole file's releases and resources, hashed, and spilled to an Arrow
           file in a temporary folder; only what the allocation needs stays in memory
           (summary index, units, two flags: 14 bytes a line);
        3. the file-wide allocation plan and largest-remainder units are computed once;
        4. each spilled piece becomes PARSED lines with its slice of the allocation.
        The last piece's ``meta.extra["final"]`` is True and carries the file's meta.
        """
        layouts, footer_code, variant, meta, cells = self._begin()
        rest, n_lines, stub = self._skeleton(cells[2])
        parts = self._partition(stub, rest, layouts, variant)
        parts.usage = None
        del rest, stub
        kinds = parts.kinds
        self._structure(parts, n_lines)
        self._unknown_records(kinds.get("unknown"))
        summaries = self._summaries(kinds.get("summary"))
        self._check_footer(kinds, layouts, footer_code, n_lines, len(summaries), parts.blocks, meta)
        # the block tables are built once, before the pieces share them
        self._resources(kinds)
        self._releases(kinds)
        with (
            tempfile.TemporaryDirectory(prefix="tm-dsr-") as tmp,
            ThreadPoolExecutor(2, thread_name_prefix="tm-dsr") as pool,
        ):
            # two pieces at a time (Polars releases the GIL: the second core works on the next
            # piece while one step of this one runs single-threaded), kept in file order
            running: deque[Future[_Spilled | None]] = deque()
            finished: list[_Spilled | None] = []
            for k, (data, first_line, last_line) in enumerate(self._chunks(batch_bytes, cells[2])):
                if len(running) >= 2:
                    finished.append(running.popleft().result())
                where = Path(tmp) / f"part-{k:05d}.arrow"
                work = (parts, cells, summaries, data, first_line, last_line, where)
                running.append(pool.submit(self._first_pass, *work))
                del data, work
            while running:
                finished.append(running.popleft().result())
            spilled = [(d.path, d.idents) for d in finished if d is not None]
            flags = [d.flags for d in finished if d is not None]
            del finished
            every = (
                pl.concat(flags)
                if flags
                else pl.DataFrame(
                    schema={
                        "sidx": pl.Int32,
                        "units": pl.Int64,
                        "weighted": pl.Boolean,
                        "err": pl.UInt8,
                    }
                )
            )
            plan = self._plan(every, summaries, meta)
            del every
            kept = [
                self._final_err(f, plan).select((pl.col("err") == 0) & pl.col("weighted"))
                for f in flags
            ]
            inputs = [
                f.filter(k.to_series()).select("sidx", "units")
                for f, k in zip(flags, kept, strict=True)
            ]
            del kept
            sizes = [f.height for f in inputs]
            alloc_in = pl.concat(inputs) if inputs else pl.DataFrame()
            del inputs, flags
            units = _largest_remainder(alloc_in, plan) if alloc_in.height else None
            del alloc_in
            meta.extra.update(
                {
                    "lines_in_file": n_lines,
                    "comment_lines": _height(kinds.get("comment")),
                    "blank_lines": _height(kinds.get("blank")),
                    "summary_records": len(summaries),
                    "blocks": parts.blocks,
                }
            )
            parts.kinds = {}
            pending, self.errors = self.errors, []
            if not spilled:
                meta.extra.update(self.extra, usage_records=0, final=True)
                empty = pl.DataFrame(schema=PARSED)
                yield ParsedFile(lines=empty, meta=meta, errors=pending, drift=self.drift)
                return
            offset, records = 0, 0
            for k, ((path, idents), size) in enumerate(zip(spilled, sizes, strict=True)):
                parts.lean = pl.read_ipc(path)
                path.unlink()
                records += parts.lean.height
                mine = None if units is None else units.slice(offset, size)
                offset += size
                lines = self._lines(parts, idents, summaries, meta, fixed=(plan, mine))
                errors, self.errors = pending + self.errors, []
                pending = []
                errors.sort(key=lambda e: (e.row or 0, e.field or ""))
                last = k == len(spilled) - 1
                if last:
                    meta.extra.update(self.extra, usage_records=records, final=True)
                    piece = meta
                else:
                    piece = FileMeta(
                        format=FORMAT,
                        period_start=meta.period_start,
                        period_end=meta.period_end,
                        service=meta.service,
                        file_number=meta.file_number,
                        number_of_files=meta.number_of_files,
                        message_id=meta.message_id,
                        extra={"final": False},
                    )
                yield ParsedFile(lines=lines, meta=piece, errors=errors, drift=self.drift)
                del lines

    def _first_pass(
        self,
        parts: _Parts,
        cells: tuple[list[int], list[int], list[str]],
        summaries: Mapping[str, _Summary],
        data: bytes,
        first_line: int,
        last_line: int,
        where: Path,
    ) -> _Spilled | None:
        """One piece of usage records: parsed, resolved, flagged, hashed and spilled to
        ``where``; None if it holds no usage record. Runs in a worker thread: it changes
        nothing shared but ``errors`` (appends) and ``extra`` (under the lock)."""
        usage = self._read(*cells, data, first_line)[0]
        del data
        if usage.height == 0:
            return None
        mine = replace(
            parts,
            usage=usage,
            until=last_line,
            usage_codes=[c for c in usage["c0"].unique() if c in self.resolved],
        )
        del usage
        lean, idents = self._usage(mine)
        lean = self._flags(lean, summaries).with_columns(
            pl.Series("raw_hash", sha256_hex(lean["raw"])),
            # the raw text is only needed to describe a rejected line
            pl.when(pl.col("err") != 0).then(pl.col("raw")).otherwise(pl.lit("")),
        )
        lean.write_ipc(where, compression="uncompressed")
        return _Spilled(where, idents, lean.select("sidx", "units", "weighted", "err"))

    def _read(
        self,
        usage_cells: list[int],
        int_cells: list[int],
        usage_bases: list[str],
        source: bytes | None = None,
        first_line: int = 1,
    ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """(usage rows, all other rows, number of lines), each row with ``line_no``, ``raw``
        and the cells ``c0`` + ``c<i>`` the usage records use.

        Two native readers over the same file, zipped in one query (the scans are shared):
        ``scan_lines`` for the raw text (one row per physical line, empty lines kept, the ``\\r``
        of a CRLF dropped) and ``scan_csv`` for the cells (only the projected columns are
        materialised), so no usage line is ever split in Python. Count cells (``int_cells``)
        arrive as Int64 (a cell that is not a whole number reads as null and is looked at again
        from the raw line).
        """
        wanted = [0, *usage_cells]
        ints = set(int_cells)
        cells_lf = pl.scan_csv(
            self.path if source is None else source,
            has_header=False,
            separator="\t",
            quote_char=None,
            schema={
                f"c{i}": pl.Int64() if i in ints else pl.String() for i in range(max(wanted) + 1)
            },
            missing_columns="insert",
            extra_columns="ignore",
            truncate_ragged_lines=True,
            ignore_errors=bool(ints),
            raise_if_empty=False,
            encoding="utf8",
        ).select([f"c{i}" for i in wanted])
        raw_lf = pl.scan_lines(
            self.path if source is None else source,
            name="raw",
            row_index_name="line_no",
            row_index_offset=first_line,
        ).with_columns(pl.col("line_no").cast(pl.Int64))
        both = pl.concat([raw_lf, cells_lf], how="horizontal")
        is_usage = pl.col("c0").str.slice(0, 4).is_in(usage_bases).fill_null(False)
        try:
            usage, rest = pl.collect_all([both.filter(is_usage), both.filter(is_usage.not_())])
        except pl.exceptions.ComputeError as exc:
            raise self._read_error(exc) from exc
        n_lines = max(
            int(usage["line_no"].max() or 0) if usage.height else 0,  # type: ignore[arg-type]
            int(rest["line_no"].max() or 0) if rest.height else 0,  # type: ignore[arg-type]
        )
        if usage.height and not _aligned(usage):
            # The CSV reader and the line reader disagree (never seen: both keep empty lines
            # and a bare \r): take every cell from the raw lines instead (slower, aligned).
            lines = pl.concat([usage, rest]).sort("line_no").select("line_no", "raw")
            lines = _resplit(lines, wanted, ints)
            first_cell = pl.col("c0").str.slice(0, 4).is_in(usage_bases).fill_null(False)
            usage, rest = lines.filter(first_cell), lines.filter(first_cell.not_())
        return usage, rest, n_lines

    # ----------------------------------------------------------------------------------------
    # usage records -> one lean frame: units, own amount, summary id, identifiers, error code

    def _usage(self, parts: _Parts) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        if parts.usage is None:
            empty = {"line_no": pl.Int64, "raw": pl.String, "code": pl.String, "sid": pl.String,
                     "units": pl.Int64, "num_err": pl.UInt8, "ref_err": pl.UInt8}  # fmt: skip
            return pl.DataFrame(schema=empty), {}
        families: dict[str, dict[str, Layout]] = {}
        for code in parts.usage_codes:
            lay = self.resolved[code]
            families.setdefault(_family(lay), {})[code] = lay
        if len(families) == 1:
            ((fam, lays),) = families.items()
            return self._usage_family(fam, parts, lays)
        rows = parts.usage
        frames = []
        for fam, lays in families.items():  # mixed variants (rare): identifiers made here
            parts.usage = rows.filter(pl.col("c0").is_in(list(lays)))
            frame, idents = self._usage_family(fam, parts, lays)
            frames.append(frame.with_columns(expr.alias(k) for k, expr in idents.items()))
        usage = pl.concat(frames, how="diagonal_relaxed").sort("line_no")
        return usage, {name: pl.col(name) for name in IDENTIFIERS if name in usage.columns}

    def _usage_family(
        self, family: str, parts: _Parts, lays: dict[str, Layout]
    ) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        """The lean frame of one family's usage lines, and the expressions that produce its
        identifier columns (evaluated once, when the output is built)."""
        rows, parts.usage = parts.usage, None  # let the file's cells go as soon as possible
        assert rows is not None
        rows = rows.rename({"c0": "code"})
        pick = _Picker(rows.schema, lays)
        cols: list[pl.Expr] = [
            pl.col("line_no"),
            pl.col("raw"),
            pl.col("code"),
            pick.cell("SummaryRecordId").alias("sid"),
            pick.units(0).alias("count"),
            pick.units(1).alias("returns"),
        ]
        if any(lay.own_amount for lay in lays.values()):
            cols.append(pick.own().str.strip_chars().alias("own_s"))
        if family == "basic":
            names = {"BlockId": "block", "TransactedRelease": "rel_ref",
                     "TransactedResource": "res_ref"}  # fmt: skip
        elif family == "ugc":
            names = {"BlockId": "block", "DspResourceId": "dsp_resource_id",
                     "DspReleaseId": "dsp_release_id"}  # fmt: skip
        else:
            names = {
                "DspResourceId": "dsp_resource_id", "ISRC": "isrc", "ResourceTitle": "title",
                "ResourceDisplayArtistName": "artist", "DspReleaseId": "dsp_release_id",
                "ProprietaryReleaseId": "proprietary_id", "ICPN": "upc",
                "ReleaseTitle": "release_title", "ReleaseDisplayArtistName": "release_artist",
            }  # fmt: skip
        cols += [pick.cell(cell).alias(name) for cell, name in names.items() if pick.has(cell)]
        out = rows.select(cols).rechunk()
        del rows
        out = self._numbers(out, lays, pick)
        if family == "basic":
            return self._basic_block_refs(out, parts.kinds)
        if family == "ugc":
            return self._ugc_block_refs(out, parts)
        have = set(out.columns)
        idents = {name: pl.col(name) for name in IDENTIFIERS if name in have}
        if "release_title" in have:
            idents["title"] = pl.coalesce(*(c for c in ("title", "release_title") if c in have))
        if "release_artist" in have:
            idents["artist"] = pl.coalesce(*(c for c in ("artist", "release_artist") if c in have))
        return out.with_columns(pl.lit(0, dtype=pl.UInt8).alias("ref_err")), idents

    def _numbers(self, out: pl.DataFrame, lays: dict[str, Layout], pick: _Picker) -> pl.DataFrame:
        """``units`` (count - returns), ``own`` (AMOUNT) and ``num_err`` (an ``_ERR`` code).

        Counts arrive as Int64 from the CSV reader; the lines where a count (or returns) is
        null are looked at again from the raw line: empty, a decimal to round (xs:decimal
        counts, half-even), or not a number.
        """
        with_returns = [c for c, lay in lays.items() if len(lay.units) > 1]
        decimal_codes = [c for c, lay in lays.items() if lay.units_decimal]
        optional = [c for c, lay in lays.items() if lay.count_optional]
        err = pl.Series("num_err", [0], dtype=pl.UInt8).extend_constant(0, out.height - 1)
        suspect = pl.col("count").is_null() | (
            pl.col("returns").is_null() & pl.col("code").is_in(with_returns)
        )
        where = out.select(pl.arg_where(suspect)).to_series()
        if where.len():
            sub = out[where].select(
                "code",
                pick.raw_units(0).str.strip_chars().alias("count_s"),
                pick.raw_units(1).str.strip_chars().alias("returns_s"),
            )
            count = sub["count_s"].cast(pl.Int64, strict=False)
            decimal = (
                count.is_null()
                & sub["code"].is_in(decimal_codes)
                & sub["count_s"].str.contains(_DEC_RE).fill_null(False)
            )
            if decimal.any():  # xs:decimal counts: a fraction is rounded half-even
                rounded = [_decimal_units(v) for v in sub["count_s"].filter(decimal).to_list()]
                count = count.scatter(decimal.arg_true(), rounded)
                self._count("fractional_usages", len(rounded))
            returns = sub["returns_s"].cast(pl.Int64, strict=False)
            sub_err = sub.select(
                pl.when(pl.col("count_s").is_null() & pl.col("code").is_in(optional).not_())
                .then(pl.lit(_ERR["missing_count"]))
                .when(pl.col("count_s").is_not_null() & count.is_null())
                .then(pl.lit(_ERR["bad_count"]))
                .when(pl.col("returns_s").is_not_null() & returns.is_null())
                .then(pl.lit(_ERR["bad_returns"]))
                .otherwise(pl.lit(0))
                .cast(pl.UInt8)
            ).to_series()
            err = err.scatter(where, sub_err)
            out = out.with_columns(
                out["count"].scatter(where, count), out["returns"].scatter(where, returns)
            )
        out = out.with_columns(err.alias("num_err"))
        if "own_s" in out.columns:
            own_valid = pl.col("own_s").str.contains(_DEC_RE).fill_null(False)
            out = out.with_columns(
                pl.when(own_valid).then(pl.col("own_s").cast(AMOUNT, strict=False)).alias("own")
            )
            # a nonzero digit beyond the lake's 12 places: refused, never rounded or cut
            too_precise = own_valid & pl.col("own_s").str.contains(_LONG_FRACTION_RE)
            required = [c for c, lay in lays.items() if lay.own_amount and not lay.single]
            out = out.with_columns(
                pl.when(pl.col("num_err") != 0)
                .then(pl.col("num_err"))
                .when(too_precise)
                .then(pl.lit(_ERR["too_precise_own"], dtype=pl.UInt8))
                .when(pl.col("own_s").is_null() & pl.col("code").is_in(required))
                .then(pl.lit(_ERR["missing_own"], dtype=pl.UInt8))
                .when(pl.col("own_s").is_not_null() & pl.col("own").is_null())
                .then(pl.lit(_ERR["bad_own"], dtype=pl.UInt8))
                .otherwise(pl.col("num_err"))
                .alias("num_err")
            )
        return out.with_columns(
            pl.when(pl.col("num_err") == 0)
            .then(pl.col("count") - pl.col("returns").fill_null(0))
            .alias("units")
        ).drop("count", "returns")

    def _basic_block_refs(
        self, out: pl.DataFrame, kinds: Mapping[str, pl.DataFrame]
    ) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        """Resource (AS by TransactedResource) and release (RE01/RE02 by TransactedRelease, else
        the block's RE01) of each SU01/SU02 line, both within the line's block: their row in
        the resource and release tables, and the identifier expressions gathering from them."""
        resources = self._resources(kinds)
        releases = self._releases(kinds)
        res = _lookup(out.select("block", pl.col("res_ref").alias("ref")), resources)
        rel_key = pl.col("rel_ref").fill_null("").alias("ref")
        rel = _lookup(out.select("block", rel_key), releases)
        out = out.with_columns(
            res.alias("res_idx"),
            rel.alias("rel_idx"),
            pl.when(pl.col("res_ref").is_not_null() & res.is_null())
            .then(pl.lit(_ERR["unknown_resource"]))
            .when(pl.col("rel_ref").is_not_null() & rel.is_null())
            .then(pl.lit(_ERR["unknown_release"]))
            .otherwise(pl.lit(0))
            .cast(pl.UInt8)
            .alias("ref_err"),
        )
        res_of = _gatherer(resources, "res_idx")
        rel_of = _gatherer(releases, "rel_idx")
        idents = {
            "isrc": res_of("isrc"),
            "dsp_resource_id": res_of("dsp_resource_id"),
            "title": pl.coalesce(res_of("title"), rel_of("release_title")),
            "artist": pl.coalesce(res_of("artist"), rel_of("release_artist")),
            "dsp_release_id": rel_of("dsp_release_id"),
            "proprietary_id": rel_of("proprietary_id"),
            "upc": rel_of("upc"),
        }
        return out, idents

    def _ugc_block_refs(
        self, out: pl.DataFrame, parts: _Parts
    ) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        """UGC SU03: its resource is the block's AS record (1.2: the one with the line's
        DspResourceId); a missing SummaryRecordId comes from the LI01 records that follow."""
        kinds = parts.kinds
        resources = self._resources(kinds)
        if "dsp_resource_id" not in out.columns:  # 1.1: the block's (first) resource
            table = resources.unique("block", keep="first", maintain_order=True).with_columns(
                pl.lit("").alias("ref")
            )
            res = _lookup(out.select("block", pl.lit("").alias("ref")), table)
        else:
            table = resources.with_columns(pl.col("dsp_resource_id").alias("ref")).unique(
                ["block", "ref"], keep="first", maintain_order=True
            )
            res = _lookup(out.select("block", pl.col("dsp_resource_id").alias("ref")), table)
        out = out.with_columns(
            res.alias("res_idx"),
            pl.when(res.is_null())
            .then(pl.lit(_ERR["unknown_resource"], dtype=pl.UInt8))
            .otherwise(pl.lit(0, dtype=pl.UInt8))
            .alias("ref_err"),
        )
        res_of = _gatherer(table, "res_idx")
        idents = {name: res_of(name) for name in ("isrc", "dsp_resource_id", "title", "artist")}
        if "dsp_release_id" in out.columns:
            idents["dsp_release_id"] = pl.col("dsp_release_id")
        licences = kinds.get("licence")
        if licences is not None and out["sid"].null_count():
            if parts.until is not None:  # chunked: this chunk's LI01 records only
                first = out["line_no"].min()
                licences = licences.filter(pl.col("line_no").is_between(first, parts.until))
            li = _cells(licences, {"SummaryRecordId": 2}).select(
                "line_no", pl.col("SummaryRecordId").alias("li_sid")
            )
            # each LI01 belongs to the SU03 record that precedes it
            owners = (
                pl.concat(
                    [
                        out.select(
                            "line_no",
                            pl.lit(True).alias("is_su"),
                            pl.lit(None, dtype=pl.String).alias("li_sid"),
                        ),
                        li.select("line_no", pl.lit(False).alias("is_su"), "li_sid"),
                    ]
                )
                .sort("line_no")
                .with_columns(
                    pl.when(pl.col("is_su")).then(pl.col("line_no")).forward_fill().alias("owner")
                )
                .filter(
                    pl.col("is_su").not_()
                    & pl.col("li_sid").is_not_null()
                    & pl.col("owner").is_not_null()
                )
                .group_by("owner", maintain_order=True)
                .agg(pl.col("li_sid").first())
            )
            sid = (
                out.select("line_no")
                .join(owners, left_on="line_no", right_on="owner", how="left",
                      maintain_order="left")["li_sid"]
            )  # fmt: skip
            out = out.with_columns(pl.coalesce(pl.col("sid"), sid).alias("sid"))
        return out, idents

    def _resources(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        if "resources" not in self.tables:
            self.tables["resources"] = self._resource_table(kinds)
        return self.tables["resources"]

    def _releases(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        if "releases" not in self.tables:
            self.tables["releases"] = self._release_table(kinds)
        return self.tables["releases"]

    def _resource_table(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        cols = ("line_no", "block", "ref", "dsp_resource_id", "isrc", "title", "artist")
        part = kinds.get("resource")
        if part is None:
            return pl.DataFrame(schema={c: pl.Int64 if c == "line_no" else pl.String
                                        for c in cols})  # fmt: skip
        frame = _cells(part, _AS).select(
            pl.col("line_no"),
            pl.col("BlockId").alias("block"),
            pl.col("ResourceReference").alias("ref"),
            pl.col("DspResourceId").alias("dsp_resource_id"),
            pl.col("ISRC").alias("isrc"),
            pl.col("Title").alias("title"),
            pl.col("DisplayArtistName").alias("artist"),
        )
        return self._dedupe(frame, "ResourceReference")

    def _release_table(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        """(block, ref) -> release identifiers; the block's RE01 also under ref ``""``."""
        cols = ("block", "ref", "dsp_release_id", "proprietary_id", "upc", "release_title",
                "release_artist")  # fmt: skip
        frames = []
        head = kinds.get("release")
        if head is not None:
            cells = _cells(head, _RE01).select(
                pl.col("line_no"),
                pl.col("BlockId").alias("block"),
                pl.col("ReleaseReference").alias("ref"),
                pl.col("DspReleaseId").alias("dsp_release_id"),
                pl.col("ProprietaryReleaseId").alias("proprietary_id"),
                pl.col("ICPN").alias("upc"),
                pl.col("Title").alias("release_title"),
                pl.col("DisplayArtistName").alias("release_artist"),
            )
            frames.append(self._dedupe(cells, "ReleaseReference"))
            frames.append(
                cells.unique("block", keep="first", maintain_order=True).with_columns(
                    pl.lit("").alias("ref")
                )
            )
        sub = kinds.get("subrelease")
        if sub is not None:
            cells = _cells(sub, _RE02).select(
                pl.col("line_no"),
                pl.col("BlockId").alias("block"),
                pl.col("ReleaseReference").alias("ref"),
                pl.col("DspSubReleaseId").alias("dsp_release_id"),
                pl.col("ProprietarySubReleaseId").alias("proprietary_id"),
                pl.lit(None, dtype=pl.String).alias("upc"),
                pl.lit(None, dtype=pl.String).alias("release_title"),
                pl.lit(None, dtype=pl.String).alias("release_artist"),
            )
            frames.append(self._dedupe(cells, "ReleaseReference"))
        if not frames:
            return pl.DataFrame(schema=dict.fromkeys(cols, pl.String))
        releases = pl.concat([f.select(cols) for f in frames])
        return releases.unique(["block", "ref"], keep="first", maintain_order=True)

    def _dedupe(self, frame: pl.DataFrame, ref_name: str) -> pl.DataFrame:
        k1, k2, _, _ = _KEY_SEEDS
        if not frame.select(
            _pair_key(pl.col("block"), pl.col("ref"), k1, k2).is_duplicated().any()
        ).item():
            return frame  # every (block, ref) once: the usual case, checked on 64-bit keys
        first = pl.struct("block", "ref").is_first_distinct()
        dup = frame.filter(first.not_())
        for row, block, ref in dup.select("line_no", "block", "ref").iter_rows():
            self.errors.append(
                RowError(
                    self.filename, row, ref_name, "duplicate_reference",
                    f"{ref_name} {ref!r} appears twice in block {block!r}; the first is used",
                )
            )  # fmt: skip
        return frame.filter(first) if dup.height else frame

    # ----------------------------------------------------------------------------------------
    # summaries -> amounts -> PARSED lines

    def _lines(
        self,
        parts: _Parts,
        idents: Mapping[str, pl.Expr],
        summaries: Mapping[str, _Summary],
        meta: FileMeta,
        fixed: tuple[_Plan, pl.Series | None] | None = None,
    ) -> pl.DataFrame:
        """The PARSED lines of the usage records. ``fixed`` (chunked parsing): the whole file's
        plan and this piece's allocated units, the lines flagged and hashed already."""
        usage, parts.lean = parts.lean, None  # this frame is the only reference: drop as we go
        assert usage is not None
        if fixed is None:
            usage = self._flags(usage, summaries)
            plan = self._plan(usage, summaries, meta)
        else:
            plan = fixed[0]
        usage = self._final_err(usage, plan)
        bad = usage.select(pl.arg_where(pl.col("err") != 0)).to_series()
        if bad.len():
            self._row_errors(usage[bad], plan, summaries)
            usage = usage.filter(pl.col("err") == 0)
        weighted = usage.select(pl.arg_where(pl.col("weighted"))).to_series()
        units = None
        if fixed is not None:
            units = fixed[1]
            assert (0 if units is None else units.len()) == weighted.len()
        elif weighted.len():
            units = _largest_remainder(usage.select("sidx", "units")[weighted], plan)
        allocated = pl.Series("allocated", [None] * usage.height, dtype=AMOUNT)
        if units is not None and units.len():
            allocated = allocated.scatter(weighted, _amount(units))
        if "raw_hash" in usage.columns:
            hashes = usage["raw_hash"]
        else:
            hashes = sha256_hex(usage["raw"]).rechunk()
        # keep only what the output needs, so the raw lines and working columns go first
        keep = ("line_no", "code", "sidx", "units", "own", "res_idx", "rel_idx", *IDENTIFIERS,
                "release_title", "release_artist")  # fmt: skip
        usage = usage.select(c for c in keep if c in usage.columns)
        start, end = self.period
        have = set(usage.columns)

        def col(name: str) -> pl.Expr:
            return idents.get(name, pl.lit(None, dtype=pl.String))

        def summary(values: list[str | None]) -> pl.Expr:
            return pl.lit(pl.Series(values, dtype=pl.String)).gather(pl.col("sidx"))

        currency = summary([s.currency for s in summaries.values()])
        if self.profile_key == ("UgcProfile", "1.2") and "own" in have:
            # UGC 1.2 states SU03/SR03 NetRevenue in the CurrencyOfTransaction
            tx = summary([s.currency_tx or s.currency for s in summaries.values()])
            currency = pl.when(pl.col("own").is_not_null()).then(tx).otherwise(currency)
        amount = pl.coalesce(pl.col("own"), allocated) if "own" in have else allocated
        columns: dict[str, pl.Expr | pl.Series] = {
            "line_no": pl.col("line_no"),
            "raw_hash": hashes,
            "usage_start": pl.lit(start, dtype=pl.Date),
            "usage_end": pl.lit(end, dtype=pl.Date),
            "territory": summary([s.territory for s in summaries.values()]),
            "isrc": col("isrc"),
            "upc": col("upc"),
            "dsp_resource_id": col("dsp_resource_id"),
            "dsp_release_id": col("dsp_release_id"),
            "proprietary_id": col("proprietary_id"),
            "title": col("title"),
            "artist": col("artist"),
            "service": pl.lit(self.service, dtype=pl.String),
            "usage_type": _usage_type(usage, self.resolved),
            "commercial_model": summary([s.commercial_model for s in summaries.values()]),
            "quantity": pl.col("units"),
            "amount": amount,
            "currency": currency,
            "gross_net": pl.lit("net"),
            "adjustment_type": pl.lit(None, dtype=pl.String),
        }
        # built eagerly in PARSED's order and types: every column one contiguous chunk, so the
        # caller's first filter or join does not have to realign (copy) the whole frame
        lines = usage.select(
            (pl.lit(value) if isinstance(value, pl.Series) else value).cast(dtype).alias(name)
            for name, dtype in PARSED.items()
            for value in (columns[name],)
        )
        assert lines.schema == pl.Schema(PARSED)
        return lines


def _largest_remainder(lines: pl.DataFrame, plan: _Plan) -> pl.Series:
    """Allocated integer units of 10^-12 for ``lines`` (``sidx``, ``units``), in their order.

    Each summary's target is split by largest remainder. With ``R = q*D + r0`` and ``w`` the
    line's units (sign-normalised so that ``D > 0``; 1 each for an even split):
    ``floor = q*w + (r0*w) // D`` and the remainder is ``(r0*w) % D``. The ``k = T - sum(floor)``
    lines with the largest remainders (ties: the earlier line) get one unit more
    (``money.largest_remainder``); ``T`` is ``R`` whenever every line of the summary is kept.
    Int64 when the magnitudes allow it (the usual case), else Int128. One vectorised pass per
    summary, on that summary's lines only.
    """
    wide = not plan.fits_int64()
    big = pl.Int128 if wide else pl.Int64
    positions: list[pl.Series] = []
    values: list[pl.Series] = []
    groups = lines.with_row_index("_pos").partition_by("sidx", as_dict=True, include_key=False)
    for (sidx,), group in groups.items():
        rev, den, sign, equal, target, _w = plan.rows[int(sidx)]
        q, r0 = divmod(rev, den)
        w = pl.lit(1, dtype=big) if equal else pl.col("units").cast(big) * pl.lit(sign, dtype=big)
        part = pl.lit(r0, dtype=big) * w
        step = group.select(
            "_pos",
            (pl.lit(q, dtype=big) * w + part // pl.lit(den, dtype=big)).alias("floor"),
            (part % pl.lit(den, dtype=big)).alias("rem"),
        )
        # the lines are in file order: ties go to the earlier line
        units = step.select(
            largest_remainder(pl.col("floor"), pl.col("rem"), pl.lit(target, dtype=big))
        ).to_series()
        positions.append(step["_pos"])
        values.append(units.cast(big))
    out = pl.Series("units", [0], dtype=big).extend_constant(0, lines.height - 1)
    return out.scatter(pl.concat(positions), pl.concat(values))


_KEY_SEEDS: Final = (0x6473_7231, 0x6473_7232, 0x6473_7233, 0x6473_7234)


def _pair_key(block: pl.Expr, ref: pl.Expr, first: int, second: int) -> pl.Expr:
    """A 64-bit key for a (block, reference) pair: null when either is missing."""
    key = block.hash(first) ^ ref.hash(second)
    return pl.when(block.is_null() | ref.is_null()).then(None).otherwise(key)


def _lookup(keys: pl.DataFrame, right: pl.DataFrame) -> pl.Series:
    """For each (``block``, ``ref``) row of ``keys``, the row of ``right`` holding that pair
    (UInt32; null when there is none). ``right`` holds each pair once.

    Joins on one 64-bit hash of the pair (an integer join is several times cheaper than one on
    two strings) and checks every match with a second, independent 64-bit hash; on a collision
    (about 2^-64 per pair) it redoes the join on the strings.
    """
    k1, k2, v1, v2 = _KEY_SEEDS
    block, ref = pl.col("block"), pl.col("ref")
    keyed = right.select(
        _pair_key(block, ref, k1, k2).alias("_key"),
        _pair_key(block, ref, v1, v2).alias("_check"),
    ).with_row_index("_row")
    if not keyed["_key"].is_duplicated().any():
        out = keys.select(
            _pair_key(block, ref, k1, k2).alias("_key"),
            _pair_key(block, ref, v1, v2).alias("_mine"),
        ).join(keyed, on="_key", how="left", maintain_order="left")
        if not out.select((pl.col("_check") != pl.col("_mine")).any()).item():
            return out["_row"]
    rows = right.select("block", "ref").with_row_index("_row")
    return keys.join(rows, on=["block", "ref"], how="left", maintain_order="left")["_row"]


def _gatherer(table: pl.DataFrame, index: str) -> Callable[[str], pl.Expr]:
    """``column name -> expression`` taking ``table[name]`` at the row in column ``index``."""

    def of(name: str) -> pl.Expr:
        return pl.lit(table[name]).gather(pl.col(index))

    return of


def _aligned(usage: pl.DataFrame) -> bool:
    """Whether the two readers agree line by line: each usage line's raw text starts with its
    first cell."""
    return bool(usage.select(pl.col("raw").str.starts_with(pl.col("c0")).all()).item())


register(DsrParser())
