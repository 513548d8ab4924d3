"""The parser contract: every report layout turns one local file into a ``ParsedFile``.

A parser never writes anywhere and never drops a line silently: a line it cannot read is a
``RowError`` (file, row, field, code, message) and is kept out of ``lines``; a file it cannot
read at all raises ``FileRejected`` with a machine-readable code (the file is quarantined).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import polars as pl
import polars_hash as plh


@dataclass(frozen=True)
class RowError:
    file: str
    row: int | None
    field: str | None
    code: str
    message: str
    # the SHA-256 of the unreadable line's text, as ``raw_hash`` of a parsed line: the file's
    # content fingerprint takes it in (two reports differing only there are two reports)
    raw_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "row": self.row,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        }


class FileRejected(Exception):
    """The whole file is unusable; ``code`` is machine-readable, ``message`` for people."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        row: int | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.row, self.field = code, message, row, field
        self.details = details or {}  # machine-readable, kept with the quarantine reason


@dataclass
class FileMeta:
    format: str
    period_start: dt.date | None = None  # the usage period the file declares
    period_end: dt.date | None = None
    # the reporting month (YYYY-MM) the file declares when it is not the month its period
    # ends in: a fiscal month (Apple's, from the file name)
    reporting_period: str | None = None
    service: str | None = None  # DSP / sender name
    declared_lines: int | None = None  # e.g. DSR FOOT NumberOfLinesInFile
    declared_totals: dict[str, Decimal] = field(default_factory=dict)  # per currency
    file_number: int | None = None  # multi-file reports: x of y
    number_of_files: int | None = None
    message_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedFile:
    lines: pl.DataFrame  # columns of schemas.revenue.PARSED, in that order
    meta: FileMeta
    errors: list[RowError] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # schema drift, naming the columns
    # findings on lines that are kept (line_no, field, code, message; severity warning): a
    # territory read as unknown (``schemas.territories.normalise_territories``)
    warnings: pl.DataFrame | None = None


class Parser(Protocol):
    name: str

    def sniff(self, filename: str, head: bytes) -> float:
        """Confidence 0..1 that this file (name + first bytes, decompressed) is this format."""
        ...

    def parse(self, path: Path, filename: str) -> ParsedFile:
        """Parse a local, already decompressed file. ``filename`` is the name as delivered."""
        ...


@runtime_checkable
class BatchParser(Parser, Protocol):
    """A parser that can also hand a large file out in pieces (bounded memory)."""

    def parse_batches(
        self, path: Path, filename: str, *, batch_bytes: int | None = None
    ) -> Iterator[ParsedFile]:
        """The file's lines in consecutive pieces of about ``batch_bytes`` of text; the last
        piece's ``meta.extra["final"]`` is True and its meta is the file's."""
        ...


REGISTRY: dict[str, Parser] = {}


def register(parser: Parser) -> Parser:
    if parser.name in REGISTRY:
        raise ValueError(f"format {parser.name!r} registered twice")
    REGISTRY[parser.name] = parser
    return parser


def sha256_hex(values: pl.Series) -> pl.Series:
    """SHA-256 hex of each text value's UTF-8 bytes (a line's ``raw_hash``): stable across runs
    and versions. Vectorised in the ``polars-hash`` plugin (Rust, SHA extensions when the CPU
    has them), no Python loop."""
    if values.len() == 0:
        return pl.Series(values.name, [], dtype=pl.String)
    name = values.name
    out = values.to_frame("raw").select(plh.col("raw").chash.sha2_256())
    return out.to_series().alias(name)
