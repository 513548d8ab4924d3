"""Reading a DSR file: its first and last records, its lines split by record kind, and its
pieces for chunked parsing; the state one parse of one file carries."""

from __future__ import annotations

import datetime as dt
import mmap
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from connectors.formats import archive
from connectors.formats.base import FileRejected, RowError
from connectors.formats.dsr.layouts import (
    _BLOCK_KINDS,
    _KIND_ID,
    KINDS,
    LAYOUTS,
    SUPPORTED,
    TAIL_BYTES,
    VERSION_ALIASES,
    Layout,
    _first_record,
)


@dataclass
class _Parts:
    kinds: dict[str, pl.DataFrame]  # every kind but the usage records
    usage: pl.DataFrame | None  # the usage records' cells
    usage_codes: list[str]
    first: int  # first and last data line (not blank, not a comment)
    last: int
    blocks: int  # distinct BlockIds
    lean: pl.DataFrame | None = None  # the usage lines, parsed (see ``_Run._usage``)
    until: int | None = None  # chunked: the last line of the current chunk


@dataclass
class _Spilled:
    """One piece after the first pass: its lean lines on disk, identifier expressions, flags."""

    path: Path
    idents: dict[str, pl.Expr]
    flags: pl.DataFrame


@dataclass
class _State:
    """What one parse of one file knows so far (the layers below add what they read)."""

    path: Path
    filename: str
    errors: list[RowError] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Layout] = field(default_factory=dict)  # record type as written -> layout
    profile_key: tuple[str, str] = ("", "")
    period: tuple[dt.date, dt.date] = (dt.date.min, dt.date.min)
    service: str | None = None
    multi: bool = False  # part of a multi-file report
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # resources, releases
    lock: threading.Lock = field(default_factory=threading.Lock)  # ``extra`` from the workers

    def _count(self, key: str, n: int) -> None:
        with self.lock:
            self.extra[key] = self.extra.get(key, 0) + n


class _Reading(_State):
    """The file's first and last records, its lines by kind, and its pieces (chunked)."""

    # ----------------------------------------------------------------------------------------
    # reading

    def _read_error(self, exc: pl.exceptions.ComputeError) -> FileRejected:
        """What a reader's failure means for the file: the first bad UTF-8 byte, or malformed."""
        if "utf" in str(exc).lower():
            bad = archive.utf8_error(self.path)
            if bad is not None:
                return bad
        return FileRejected("malformed", f"{self.filename}: {exc}")

    def _read_text(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 3:  # not just a character cut by the window
                bad = archive.utf8_error(self.path)
                raise (bad or FileRejected("encoding", f"{self.filename} is not UTF-8")) from exc
            text = data[: exc.start].decode("utf-8")
        return text.removeprefix("\ufeff")

    def _profile(self, cells: list[str]) -> tuple[str, str, dict[str, Layout]]:
        profile = cells[2].strip() if len(cells) > 2 else ""
        version = cells[3].strip() if len(cells) > 3 else ""
        version = VERSION_ALIASES.get((profile, version), version)
        layouts = LAYOUTS.get((profile, version))
        if layouts is None:
            raise FileRejected(
                "unsupported_profile",
                f"HEAD declares profile {profile!r} version {version!r}; supported: {SUPPORTED}",
                field="Profile",
            )
        return profile, version, layouts

    def _footer_code(self) -> str:
        size = self.path.stat().st_size
        with self.path.open("rb") as fh:
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read()
        text = tail.decode("utf-8", errors="replace")
        if size > TAIL_BYTES and "\n" in text:
            text = text[text.index("\n") + 1 :]
        last = _first_record(text, last=True)
        code = last[1][0] if last else ""
        if code not in ("FOOT", "SRFO"):
            raise FileRejected(
                "missing_foot",
                f"{self.filename} does not end with a FOOT (or SRFO) record: its last record is "
                f"{code[:12]!r}; the file looks truncated",
            )
        return code

    def _skeleton(self, usage_bases: list[str]) -> tuple[pl.DataFrame, int, pl.DataFrame]:
        """(the rows that are not usage records, number of lines, a small stand-in for the
        usage rows: each (record type, BlockId) pair at its first and last line), by the line
        reader alone, streaming: memory for the non-usage rows only."""
        lines = pl.scan_lines(
            self.path, name="raw", row_index_name="line_no", row_index_offset=1
        ).with_columns(pl.col("line_no").cast(pl.Int64))
        head = pl.col("raw").str.splitn("\t", 3)
        cells = lines.with_columns(
            head.struct.field("field_0").alias("c0"), head.struct.field("field_1").alias("c1")
        )
        is_usage = pl.col("c0").str.slice(0, 4).is_in(usage_bases).fill_null(False)
        try:
            rest, pairs, count = pl.collect_all(
                [
                    cells.filter(is_usage.not_()),
                    cells.filter(is_usage)
                    .group_by("c0", "c1")
                    .agg(pl.col("line_no").min().alias("a"), pl.col("line_no").max().alias("b")),
                    lines.select(pl.len().alias("n")),
                ],
                engine="streaming",
            )
        except pl.exceptions.ComputeError as exc:
            raise self._read_error(exc) from exc
        stub = (
            pl.concat(
                [
                    pairs.select(pl.col("a").alias("line_no"), "c0", "c1"),
                    pairs.select(pl.col("b").alias("line_no"), "c0", "c1"),
                ]
            )
            .sort("line_no")
            .with_columns(pl.lit("").alias("raw"))
        )
        return rest.sort("line_no"), int(count["n"][0]), stub

    def _chunks(self, size: int, usage_bases: list[str]) -> Iterator[tuple[bytes, int, int]]:
        """``(bytes, first line, last line)`` pieces of about ``size`` bytes of the file, each
        cut just before a usage record."""
        starts = tuple(b.encode() for b in usage_bases)
        total = self.path.stat().st_size
        with self.path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos, line, released = 0, 1, 0
            while pos < total:
                end = total if total - pos < size + size // 2 else pos + size
                while end < total:
                    nl = mm.find(b"\n", end)
                    if nl == -1:
                        end = total
                    elif mm[nl + 1 : nl + 5] in starts:
                        end = nl + 1
                        break
                    else:
                        end = nl + 1
                data = mm[pos:end]
                n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
                done = end - end % mmap.PAGESIZE
                if done > released:  # the copied pages leave this process's RSS
                    mm.madvise(mmap.MADV_DONTNEED, released, done - released)
                    released = done
                yield data, line, line + n - 1
                line += n
                pos = end

    def _partition(
        self,
        usage: pl.DataFrame,
        rest: pl.DataFrame,
        layouts: Mapping[str, Layout],
        variant: str,
    ) -> _Parts:
        """The non-usage rows by kind (``comment``, ``blank``, a layout kind, ``unknown``)."""
        if rest.height and (rest["raw"][0] or "").startswith("\ufeff"):  # a UTF-8 BOM
            rest = rest.with_columns(
                rest["raw"].scatter(0, rest["raw"][0].removeprefix("\ufeff")),
                rest["c0"].scatter(0, (rest["c0"][0] or "").removeprefix("\ufeff")),
            )
        by_base = {lay.base: lay for lay in layouts.values()}
        codes = rest["c0"].drop_nulls().unique().to_list()
        usage_codes = usage["c0"].unique().to_list() if usage.height else []
        kind_of: dict[str, int] = {}
        for code in [*codes, *usage_codes]:
            if code.startswith("#"):
                kind_of[code] = _KIND_ID["comment"]
                continue
            layout = layouts.get(code)
            if layout is None and code == "SRHE":
                layout = layouts["HEAD"]
            if layout is None and len(code) >= 4 and code[:4] in by_base:
                layout = by_base[code[:4]]
                if layout.kind not in ("head", "foot", "srfo"):
                    self.drift.append(
                        f"record type {code} read as {layout.code} (the profile's version)"
                    )
            if layout is not None:
                kind_of[code] = _KIND_ID[layout.kind]
                self.resolved[code] = layout
        kinds: dict[str, pl.DataFrame] = {}
        if rest.height:
            kind = pl.col("c0").replace_strict(
                kind_of, default=_KIND_ID["unknown"], return_dtype=pl.UInt8
            )
            blank = pl.col("raw").str.len_bytes() == 0
            rest = rest.with_columns(
                pl.when(blank).then(pl.lit(_KIND_ID["blank"], dtype=pl.UInt8)).otherwise(kind)
                .fill_null(_KIND_ID["unknown"])
                .alias("kind")
            )  # fmt: skip
            split = rest.partition_by("kind", as_dict=True, include_key=False)
            kinds = {KINDS[int(key[0])]: part for key, part in split.items()}
        data = [p["line_no"] for k, p in kinds.items() if k not in ("comment", "blank")]
        if usage.height:
            data += [usage["line_no"].head(1), usage["line_no"].tail(1)]
        lines = pl.concat(data) if data else pl.Series([0], dtype=pl.Int64)
        blocks = [kinds[k]["c1"] for k in _BLOCK_KINDS if k in kinds]
        block_codes = [c for c in usage_codes if c in self.resolved and not self.resolved[c].single]
        if usage.height and block_codes:
            rows = usage
            if len(block_codes) < len(usage_codes):
                rows = usage.filter(pl.col("c0").is_in(block_codes))
            blocks.append(rows["c1"])
        return _Parts(
            kinds=kinds,
            usage=usage if usage.height else None,
            usage_codes=[c for c in usage_codes if c in self.resolved],
            first=int(lines.min() or 0),  # type: ignore[arg-type]
            last=int(lines.max() or 0),  # type: ignore[arg-type]
            blocks=pl.concat(blocks).drop_nulls().n_unique() if blocks else 0,
        )
