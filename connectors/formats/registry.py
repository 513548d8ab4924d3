"""The format registry: one parser per spec in ``schemas/formats/*.yaml`` (+ code parsers such as
DDEX DSR), format detection, and ``parse_file`` = unwrap -> detect -> parse -> normalise.

Parsers hand identifiers and territories over as the report writes them; each parsed piece's
ISRC and UPC columns are normalised here, once, for every parser
(``schemas.identifiers.normalise_lines``), and its territories read as codes
(``schemas.territories.normalise_territories``: alpha-3, numeric, names, store aliases; one
nobody can place is ``ZZ`` with a warning), so validation and matching see the same value and
the lake stores it.

Adding a layout is adding a spec file: ``load_registry(directory)`` builds parsers from any
directory of specs, and ``register_directory`` adds them to ``base.REGISTRY``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import polars as pl

from connectors.formats import archive
from connectors.formats.base import REGISTRY, BatchParser, FileRejected, ParsedFile, Parser
from connectors.formats.spec import SpecParser
from schemas import identifiers, territories
from schemas.format_spec import FormatSpec, SpecError, load_spec

DEFAULT_FORMATS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "formats"
CODE_PARSERS = ("connectors.formats.dsr",)  # modules that register a parser when imported
MIN_SCORE = 0.5  # below this a parser does not claim the file
TIE = 0.05  # two claims closer than this (with the same specificity) are ambiguous

_default_lock = threading.Lock()
_default_loaded = False


def load_specs(directory: Path = DEFAULT_FORMATS_DIR) -> list[SpecParser]:
    """A parser for every ``*.yaml`` spec in ``directory`` (``SpecError`` on a bad spec)."""
    parsers = []
    for path in sorted(directory.glob("*.yaml")):
        parsers.append(SpecParser(load_spec(path), source=path))
    return parsers


def load_registry(
    directory: Path | None = None, *, include_default: bool = False
) -> dict[str, Parser]:
    """A registry (name -> parser) from a spec directory, e.g. a finance user's own formats.

    ``include_default`` adds the shipped formats (and code parsers) underneath; a spec in
    ``directory`` with a shipped name is an error rather than a silent override.
    """
    out: dict[str, Parser] = dict(default_registry()) if include_default else {}
    for parser in load_specs(directory or DEFAULT_FORMATS_DIR):
        if parser.name in out:
            raise SpecError(f"{parser.source}: format {parser.name!r} is already defined")
        out[parser.name] = parser
    return out


def register_directory(directory: Path, registry: dict[str, Parser] = REGISTRY) -> list[str]:
    """Register every spec in ``directory`` into ``registry`` (``base.REGISTRY`` by default)."""
    parsers = load_specs(directory)
    clash = [p.name for p in parsers if p.name in registry]
    if clash:
        raise SpecError(f"{directory}: format(s) already registered: {', '.join(clash)}")
    for parser in parsers:
        registry[parser.name] = parser
    return [p.name for p in parsers]


def default_registry() -> dict[str, Parser]:
    """``base.REGISTRY`` with the shipped specs and code parsers loaded (once)."""
    global _default_loaded
    with _default_lock:
        if not _default_loaded:
            for module in CODE_PARSERS:
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as exc:
                    if exc.name != module:  # the module exists but one of its imports is missing
                        raise
            for parser in load_specs(DEFAULT_FORMATS_DIR):
                REGISTRY.setdefault(parser.name, parser)
            _default_loaded = True
    return REGISTRY


def org_registry(
    specs: Iterable[tuple[FormatSpec, int]], base: Mapping[str, Parser] | None = None
) -> dict[str, Parser]:
    """The registry one organisation reads its files with: its own specs (each with its stored
    version, kept on the parser as ``org_version``) over ``base`` (the shipped formats).

    An organisation's spec with a shipped format's name replaces it for that organisation
    only; in detection an organisation's format wins a tie against a shipped one.
    The caller (``pipelines``) reads the specs from the store: connectors never do.
    """
    out: dict[str, Parser] = dict(default_registry() if base is None else base)
    for spec, version in specs:
        parser = SpecParser(spec)
        parser.org_version = version  # type: ignore[attr-defined]
        out[spec.name] = parser
    return out


def org_version(parser: Parser) -> int | None:
    """The stored version of an organisation's own format; None for a shipped one."""
    return getattr(parser, "org_version", None)


def _score(parser: Parser, filename: str, head: bytes, path: Path | None) -> float:
    if path is not None and isinstance(parser, SpecParser):
        return parser.sniff_path(path, filename)
    try:
        return float(parser.sniff(filename, head))
    except Exception:  # a code parser's sniff must not break detection of the others
        return 0.0


def detect(
    filename: str,
    head: bytes,
    *,
    override: str | None = None,
    path: Path | None = None,
    registry: Mapping[str, Parser] | None = None,
) -> Parser:
    """The parser for a (decompressed) file, from its name and first bytes.

    ``override`` (the CLI's ``--format``) skips detection. Every parser scores the file
    (spec parsers: 0.7 x share of fingerprint columns in the header + 0.3 if the file name
    matches); the best claim at or above 0.5 wins, ties are broken by the more specific
    fingerprint, and anything left ambiguous or unclaimed is ``FileRejected("unknown_format")``
    listing the candidates. ``path`` lets XLSX specs read the header row.
    """
    reg = default_registry() if registry is None else registry
    if override is not None:
        if override not in reg:
            raise FileRejected(
                "unknown_format",
                f"no format named {override!r}; known: {', '.join(sorted(reg))}",
            )
        return reg[override]
    scored = sorted(
        (
            (
                _score(p, filename, head, path),
                getattr(p, "specificity", 0),
                org_version(p) is not None,  # an organisation's own format wins a tie
                name,
            )
            for name, p in reg.items()
        ),
        reverse=True,
    )
    claims = [s for s in scored if s[0] >= MIN_SCORE]
    if not claims:
        if not head.startswith(b"PK\x03\x04"):
            archive.detect_encoding(head)  # undecodable text is the better reason to give
        near = ", ".join(f"{n} ({s:.2f})" for s, _, _, n in scored[:3] if s > 0) or "none"
        raise FileRejected(
            "unknown_format",
            f"no format matches {filename!r} (closest: {near}); pass --format NAME",
        )
    best = claims[0]
    rivals = [c for c in claims[1:] if best[0] - c[0] < TIE and c[1] == best[1] and c[2] == best[2]]
    if rivals:
        names = ", ".join(f"{n} ({s:.2f})" for s, _, _, n in [best, *rivals])
        raise FileRejected(
            "unknown_format", f"{filename!r} matches several formats: {names}; pass --format NAME"
        )
    return reg[best[3]]


def parse_file(
    path: Path,
    filename: str,
    workdir: Path,
    *,
    format: str | None = None,
    registry: Mapping[str, Parser] | None = None,
) -> list[ParsedFile]:
    """Unwrap a delivered file (``.gz``/``.zip``), detect each member's format, parse it.

    One ``ParsedFile`` per member. Raises ``FileRejected`` if any member cannot be read (the
    delivered file is then quarantined as a whole). ``workdir`` receives decompressed and
    transcoded copies; the caller owns and removes it.
    """
    out: list[ParsedFile] = []
    for name, member, parser, transcoded_from in _members(
        path, filename, workdir, format, registry
    ):
        if isinstance(parser, SpecParser):
            parsed = parser.parse(member, name, workdir=workdir)
        else:
            parsed = parser.parse(member, name)
        if transcoded_from:
            parsed.meta.extra["encoding"] = transcoded_from
        _normalise(parsed)
        out.append(parsed)
    return out


def iter_parse_file(
    path: Path,
    filename: str,
    workdir: Path,
    *,
    format: str | None = None,
    registry: Mapping[str, Parser] | None = None,
    batch_bytes: int | None = None,
) -> Iterator[ParsedFile]:
    """Like ``parse_file``, in bounded memory: each member comes in pieces of about
    ``batch_bytes`` of text (default ``spec.BATCH_BYTES``) from parsers that can cut a file
    (``parse_batches``: spec layouts and DDEX DSR). The file-level meta (declared totals,
    a period known only at the end) is complete on each member's last piece, whose
    ``meta.extra["final"]`` is True; other parsers give one (final) piece a member.
    """
    for name, member, parser, transcoded_from in _members(
        path, filename, workdir, format, registry
    ):
        pieces: Iterable[ParsedFile]
        if isinstance(parser, SpecParser):
            pieces = parser.parse_batches(member, name, workdir=workdir, batch_bytes=batch_bytes)
        elif isinstance(parser, BatchParser):
            pieces = parser.parse_batches(member, name, batch_bytes=batch_bytes)
        else:
            pieces = [parser.parse(member, name)]
        for piece in pieces:
            _normalise(piece)
            piece.meta.extra["member"] = name
            if transcoded_from:
                piece.meta.extra["encoding"] = transcoded_from
            yield piece


def _normalise(parsed: ParsedFile) -> None:
    """What every reader's lines go through once: identifiers, then territories as reports
    write them (a territory that cannot be placed is UNKNOWN, with a warning per line)."""
    parsed.lines = identifiers.normalise_lines(parsed.lines)
    parsed.lines, found = territories.normalise_territories(parsed.lines)
    if found.height:
        parsed.warnings = found if parsed.warnings is None else pl.concat([parsed.warnings, found])


def _members(
    path: Path,
    filename: str,
    workdir: Path,
    format: str | None,
    registry: Mapping[str, Parser] | None,
) -> Iterator[tuple[str, Path, Parser, str | None]]:
    """Each member of a delivery, ready to parse: (name, local UTF-8 path, parser, original
    encoding if it was transcoded)."""
    for name, member in archive.unwrap(path, workdir, filename=filename):
        if archive.is_archive_name(name):
            raise FileRejected(
                "nested_archive", f"{name!r} inside {filename!r} is itself an archive"
            )
        if member.stat().st_size == 0:
            raise FileRejected("empty_file", f"{name} is empty")
        head = archive.read_head(member)
        transcoded_from = None
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            # UTF-16 with BOM: every parser (spec or code) then reads UTF-8.
            transcoded_from = archive.detect_encoding(head)
            member = archive.transcode_to_utf8(member, workdir, transcoded_from)
            head = archive.read_head(member)
        if not head.startswith(b"PK\x03\x04"):  # text, not a spreadsheet
            # CR-only (old Mac) or mixed line ends: every parser then reads LF or CRLF
            unified = archive.normalise_line_ends(member, workdir)
            if unified is not None:
                member, head = unified, archive.read_head(unified)
        if not head.lstrip(b"\xef\xbb\xbf").strip() and member.stat().st_size <= len(head):
            # blank lines only: empty, not a layout nobody knows
            raise FileRejected("empty_file", f"{name} holds nothing but blank lines")
        parser = detect(name, head, override=format, path=member, registry=registry)
        yield name, member, parser, transcoded_from
