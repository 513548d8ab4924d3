"""A small, deterministic writer of valid DDEX DSR flat files: demo data, tests and benchmarks.

``write_dsr(path, lines=N, seed=S, ...)`` writes exactly ``N`` lines (``.gz`` paths are gzipped)
with a HEAD, ``#`` comment lines naming the cells of each record type used, one summary record
per territory and sales context, the sales/usage records and a footer whose counts match the
file. Summary usages are the sums of their usage lines and NetRevenue is a per-usage rate times
those usages, so the declared totals (``WrittenDsr.declared_totals``) are what a correct parser
must end up with. The same arguments always give the same bytes.

Supported: ``BasicAudioProfile`` 1.2 (block and single-record variants) and 1.1 (block),
``UgcProfile`` 1.2 (block and single-record) and 1.1.1 (block). Lines are built column-wise with
Polars (no Python loop per line), so millions of lines take seconds.

``record(code, **cells)`` formats one record by cell name, for hand-written fixtures.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Final, Literal, cast

import polars as pl

from schemas.identifiers import gtin_check_digit, gtin_check_digit_expr

RECORD_CELLS: Final[dict[str, tuple[str, ...]]] = {
    code: tuple(names.split())
    for code, names in {
        "HEAD": "MessageVersion Profile ProfileVersion MessageId MessageCreatedDateTime FileNumber "
        "NumberOfFiles UsageStartDate UsageEndDate SenderPartyId SenderName ServiceDescription "
        "RecipientPartyId RecipientName RepresentedRepertoire",
        "FOOT": "NumberOfLinesInFile NumberOfLinesInReport NumberOfSummaryRecords "
        "NumberOfBlocksInFile NumberOfBlocksInReport",
        "SRFO": "NumberOfLinesInReport NumberOfSummaryRecords",
        "SY01.01": "SummaryRecordId DistributionChannel DistributionChannelDPID CommercialModel "
        "UseType Territory ServiceDescription Usages Subscribers CurrencyOfReporting NetRevenue "
        "IndirectNetRevenue CurrencyOfTransaction ExchangeRate",
        "SY02.02": "SummaryRecordId DistributionChannel DistributionChannelDPID CommercialModel "
        "UseType Territory ServiceDescription Usages Users CurrencyOfReporting NetRevenue "
        "RightsController RightsControllerPartyId AllocatedUsages AllocatedRevenue "
        "AllocatedNetRevenue RightsType ContentCategory CurrencyOfTransaction ExchangeRate "
        "RightsTypePercentage",
        "SY02.01": "SummaryRecordId DistributionChannel DistributionChannelDPID CommercialModel "
        "UseType Territory ServiceDescription Usages Users Currency NetRevenue RightsController "
        "RightsControllerPartyId AllocatedUsages AllocatedRevenue AllocatedNetRevenue RightsType",
        "RE01": "BlockId ReleaseReference DspReleaseId ProprietaryReleaseId CatalogNumber ICPN "
        "DisplayArtistName DisplayArtistPartyId Title SubTitle ReleaseType Label PLine "
        "DataProvider",
        "RE02": "BlockId ReleaseReference DspSubReleaseId ProprietarySubReleaseId UsedResources",
        "AS01": "BlockId ResourceReference DspResourceId ISRC Title SubTitle DisplayArtistName "
        "DisplayArtistPartyId Duration ResourceType",
        "AS01.01": "BlockId ResourceReference DspResourceId ISRC Title SubTitle DisplayArtistName "
        "DisplayArtistPartyId Duration ResourceType IsMasterRecording",
        "AS02.01": "BlockId ResourceReference DspResourceId ISRC Title SubTitle DisplayArtistName "
        "DisplayArtistPartyId Duration ResourceType ISWC ComposerAuthor ComposerAuthorPartyId "
        "Arranger ArrangerPartyId MusicPublisher MusicPublisherPartyId WorkContributor "
        "WorkContributorPartyId ProprietaryWorkId",
        "AS02.02": "BlockId ResourceReference DspResourceId ISRC Title SubTitle DisplayArtistName "
        "DisplayArtistPartyId Duration ResourceType ISWC ComposerAuthor ComposerAuthorPartyId "
        "Arranger ArrangerPartyId MusicPublisher MusicPublisherPartyId WorkContributor "
        "WorkContributorPartyId ProprietaryWorkId IsMasterRecording",
        "SU01": "BlockId SummaryRecordId SalesTransactionId TransactedRelease TransactedResource "
        "IsRoyaltyBearing SalesUpgrade Usages Returns PriceConsumerPaidExcSalesTax "
        "PromotionalActivity",
        "SU02": "BlockId SummaryRecordId SalesTransactionId TransactedRelease TransactedResource "
        "IsRoyaltyBearing NumberOfStreams PriceConsumerPaidExcSalesTax PromotionalActivity",
        "SR01": "SummaryRecordId DspResourceId ISRC ResourceTitle ResourceSubTitle "
        "ResourceDisplayArtistName ResourceDisplayArtistPartyId Duration ResourceType "
        "ProprietaryWorkId ISWC ComposerAuthor ComposerAuthorPartyId Arranger ArrangerPartyId "
        "MusicPublisher MusicPublisherPartyId WorkContributor WorkContributorPartyId DspReleaseId "
        "ProprietaryReleaseId ReleaseCatalogNumber ICPN ReleaseDisplayArtistName "
        "ReleaseDisplayArtistPartyId ReleaseTitle ReleaseSubTitle ReleaseType ReleaseLabel PLine "
        "ReleaseDataProvider NumberOfTransactedResources SalesTransactionId IsRoyaltyBearing "
        "SalesUpgrade Downloads Returns PriceConsumerPaidExcSalesTax "
        "CalculatedPriceConsumerPaidForResourceExcSalesTax PromotionalActivity",
        "SR02": "SummaryRecordId DspResourceId ISRC ResourceTitle ResourceSubTitle "
        "ResourceDisplayArtistName ResourceDisplayArtistPartyId Duration ResourceType "
        "ProprietaryWorkId ISWC ComposerAuthor ComposerAuthorPartyId Arranger ArrangerPartyId "
        "MusicPublisher MusicPublisherPartyId WorkContributor WorkContributorPartyId DspReleaseId "
        "ProprietaryReleaseId ReleaseCatalogNumber ICPN ReleaseDisplayArtistName "
        "ReleaseDisplayArtistPartyId ReleaseTitle ReleaseSubTitle ReleaseType ReleaseLabel PLine "
        "ReleaseDataProvider SalesTransactionId IsRoyaltyBearing NumberOfStreams "
        "PromotionalActivity",
        "SU03.01": "BlockId SalesTransactionId SummaryRecordId DspReleaseId Usages NetRevenue "
        "ValidityPeriodStart ValidityPeriodEnd",
        "SU03.02": "BlockId SalesTransactionId SummaryRecordId DspResourceId Usages NetRevenue "
        "ValidityPeriodStart ValidityPeriodEnd ContentCategory IsRoyaltyBearing",
        "LI01.01": "BlockId SummaryRecordId RightsController RightsControllerPartyId "
        "RightsControllerWorkId RightSharePercentage RightsType AllocatedNetRevenue "
        "AllocatedAmount",
        "LI01.02": "BlockId SummaryRecordId RightsController RightsControllerPartyId "
        "RightsControllerWorkId RightSharePercentage RightsType AllocatedNetRevenue "
        "AllocatedAmount AllocatedUsages",
        "SR03": "SummaryRecordId DspResourceId ISRC ResourceTitle ResourceSubTitle "
        "ResourceDisplayArtistName ResourceDisplayArtistPartyId Duration ResourceType WorkTitle "
        "DspWorkId ISWC ComposerAuthor ComposerAuthorPartyId Arranger ArrangerPartyId "
        "MusicPublisher MusicPublisherPartyId WorkContributor WorkContributorPartyId DspReleaseId "
        "ProprietaryReleaseId CatalogNumber ICPN ReleaseDisplayArtistName "
        "ReleaseDisplayArtistPartyId ReleaseTitle ReleaseSubTitle ReleaseLabel PLine "
        "SalesTransactionId Usages NetRevenue ValidityPeriodStart ValidityPeriodEnd "
        "ContentCategory RightsController RightsControllerPartyId RightsControllerWorkId "
        "RightSharePercentage RightsType AllocatedNetRevenue AllocatedAmount AllocatedUsages "
        "AllocatedNetUsage",
    }.items()
}
"""Every cell of the record types the writer emits (from the DSR record-type definitions)."""

DEFAULT_CURRENCIES: Final[dict[str, str]] = {
    "DE": "EUR", "FR": "EUR", "ES": "EUR", "IT": "EUR", "NL": "EUR", "GB": "GBP", "US": "USD",
    "SE": "SEK", "JP": "JPY", "BR": "BRL",
}  # fmt: skip
CREATED: Final = dt.datetime(2026, 2, 3, 10, 0, 0, tzinfo=dt.UTC)

Profile = Literal["BasicAudioProfile", "UgcProfile"]
Variant = Literal["block", "single"]


@dataclass(frozen=True)
class _Context:
    """A summary record's sales context and its per-usage revenue rate."""

    commercial_model: str
    use_type: str
    usage: str  # "stream", "download", "ugc"
    rate: Decimal  # revenue per usage
    service: str


@dataclass(frozen=True)
class _Versions:
    summary: str
    resource: str
    stream: str
    download: str
    ugc: str


_VERSIONS: Final[dict[tuple[str, str], _Versions]] = {
    ("BasicAudioProfile", "1.2"): _Versions("SY02.02", "AS01.01", "SU02", "SU01", ""),
    ("BasicAudioProfile", "1.1"): _Versions("SY02.01", "AS01", "SU02", "SU01", ""),
    ("UgcProfile", "1.2"): _Versions("SY02.02", "AS01.01", "", "", "SU03.02"),
    ("UgcProfile", "1.1.1"): _Versions("SY02.01", "AS01", "", "", "SU03.01"),
}


@dataclass(frozen=True)
class WrittenDsr:
    """What was written: the counts a parser must find and the totals it must reproduce."""

    path: Path
    lines: int
    summary_records: int
    blocks: int
    usage_records: int
    declared_totals: dict[str, Decimal]
    usages: int  # sum of all usage units (downloads net of returns)
    period_start: dt.date
    period_end: dt.date
    message_id: str


def record(code: str, **cells: object) -> str:
    """One record line (without newline), cells given by name; unknown names are an error."""
    names = RECORD_CELLS[code]
    values = [""] * len(names)
    for name, value in cells.items():
        try:
            values[names.index(name)] = "" if value is None else str(value)
        except ValueError:
            raise ValueError(f"record {code} has no cell {name!r}") from None
    return "\t".join((code, *values))


def comment(code: str) -> str:
    """The ``#`` line naming the cells of ``code`` (ignored by readers, counted as a line)."""
    return "\t".join((f"#{code}", *RECORD_CELLS[code]))


def dsr_filename(
    *,
    recipient: str,
    sender: str,
    service: str,
    period: str,
    territory: str,
    file_number: int = 1,
    number_of_files: int = 1,
    created: dt.datetime = CREATED,
    gz: bool = False,
) -> str:
    """``DSR_<Recipient>_<Sender>_<Service>_<Period>_<Territory>_<x>of<y>_<Created>.tsv[.gz]``."""
    stamp = created.strftime("%Y%m%dT%H%M%S")
    name = (
        f"DSR_{recipient}_{sender}_{service}_{period}_{territory}_"
        f"{file_number}of{number_of_files}_{stamp}.tsv"
    )
    return name + (".gz" if gz else "")


def gtin13(body: str) -> str:
    """A 12-digit body plus its GS1 mod-10 check digit."""
    return body + gtin_check_digit(body)


def _gtin13_expr(body: pl.Expr) -> pl.Expr:
    """``gtin13`` for a column of 12-digit bodies."""
    return pl.concat_str([body, gtin_check_digit_expr(body)])


def _period_dates(period: str) -> tuple[dt.date, dt.date]:
    year, month = (int(p) for p in period.split("-"))
    start = dt.date(year, month, 1)
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return start, nxt - dt.timedelta(days=1)


def _contexts(profile: str, service: str) -> list[_Context]:
    if profile == "UgcProfile":
        return [
            _Context("AdvertisementSupportedModel", "Stream", "ugc", Decimal("0.00042"), service),
            _Context("SubscriptionModel", "Stream", "ugc", Decimal("0.00110"), service),
        ]
    return [
        _Context("SubscriptionModel", "OnDemandStream", "stream", Decimal("0.0038"), service),
        _Context("AdvertisementSupportedModel", "OnDemandStream", "stream", Decimal("0.0009"),
                 service),
        _Context("PayAsYouGoModel", "PermanentDownload", "download", Decimal("0.70"), service),
    ]  # fmt: skip


def _rnd(index: pl.Expr, salt: int) -> pl.Expr:
    """A deterministic pseudo-random non-negative integer per row (Lehmer steps, no overflow)."""
    m = 2_147_483_647
    x = (index * 2_654_435_761 + salt * 40_503 + 12_345) % m
    return (x * 48_271) % m * 16_807 % m


def _line(code: str, cells: Mapping[str, pl.Expr | str]) -> pl.Expr:
    names = RECORD_CELLS[code]
    unknown = set(cells) - set(names)
    if unknown:
        raise ValueError(f"record {code} has no cells {sorted(unknown)}")
    parts: list[pl.Expr] = []
    text = code  # runs of fixed cells become one literal
    for name in names:
        value = cells.get(name, "")
        if isinstance(value, str):
            text += "\t" + value
            continue
        parts += [pl.lit(text + "\t"), value.cast(pl.String)]
        text = ""
    return pl.concat_str([*parts, pl.lit(text)], ignore_nulls=True)


def write_dsr(
    path: Path | str,
    *,
    lines: int,
    seed: int,
    profile: Profile = "BasicAudioProfile",
    version: str | None = None,
    variant: Variant = "block",
    sender: str = "Spotify",
    sender_party_id: str = "PADPIDA2011072101T",
    recipient: str = "AuroraRecords",
    recipient_party_id: str = "PADPIDA2026010101L",
    service: str = "Premium",
    period: str = "2026-01",
    territories: Sequence[str] = ("DE", "FR", "GB", "US"),
    currencies: Mapping[str, str] | None = None,
    message_id: str | None = None,
    created: dt.datetime = CREATED,
    comments: bool = True,
    file_number: int = 1,
    number_of_files: int = 1,
    tracks_per_block: tuple[int, int] = (1, 12),
    usages_per_block: tuple[int, int] = (1, 120),
) -> WrittenDsr:
    """Write a valid DSR file of exactly ``lines`` lines; see the module docstring."""
    path = Path(path)
    version = version or "1.2"
    versions = _VERSIONS.get((profile, version))
    if versions is None:
        raise ValueError(f"write_dsr supports {sorted(_VERSIONS)}, not {(profile, version)}")
    if variant == "single" and version != "1.2":
        raise ValueError("the single-record variant exists from version 1.2")
    currencies = {**DEFAULT_CURRENCIES, **(currencies or {})}
    start, end = _period_dates(period)
    message_id = message_id or f"DSR-{seed}-{file_number}"
    rng = random.Random(seed)
    contexts = [(t, c) for t in territories for c in _contexts(profile, service)]
    summary_ids = [f"S{i + 1}" for i in range(len(contexts))]

    head = record(
        "HEAD",
        MessageVersion="dsrf/1.4/1.4/1.4",
        Profile=profile,
        ProfileVersion=version,
        MessageId=message_id,
        MessageCreatedDateTime=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        FileNumber=file_number,
        NumberOfFiles=number_of_files,
        UsageStartDate=start.isoformat(),
        UsageEndDate=end.isoformat(),
        SenderPartyId=sender_party_id,
        SenderName=sender,
        ServiceDescription=service,
        RecipientPartyId=recipient_party_id,
        RecipientName=recipient,
    )
    footer_code = "SRFO" if variant == "single" else "FOOT"
    if variant == "single":
        body_codes = ["SR03"] if profile == "UgcProfile" else ["SR01", "SR02"]
    elif profile == "UgcProfile":
        body_codes = [versions.resource, versions.ugc]
    else:
        body_codes = ["RE01", versions.resource, versions.download, versions.stream]
    comment_lines = (
        [comment(c) for c in ("HEAD", versions.summary, *body_codes, footer_code)]
        if comments
        else []
    )
    fixed = 1 + len(comment_lines) + len(contexts) + 1
    budget = lines - fixed
    if variant == "single":
        if budget < 1:
            raise ValueError(f"a {variant} {profile} file needs at least {fixed + 1} lines")
        body, blocks = _single_body(budget, seed, profile, contexts, summary_ids, end)
    else:
        sizes = _block_sizes(budget, rng, profile, tracks_per_block, usages_per_block, fixed)
        blocks = len(sizes)
        body = _block_body(sizes, seed, profile, versions, contexts, summary_ids, end)

    usage = body.filter(pl.col("units").is_not_null())
    per_summary = usage.group_by("sid").agg(
        pl.col("units").sum().alias("usages"),
        pl.col("own").sum().alias("own"),
    )
    by_sid = {r[0]: (r[1], r[2]) for r in per_summary.iter_rows()}
    declared: dict[str, Decimal] = {}
    summary_lines = []
    for sid, (territory, ctx) in zip(summary_ids, contexts, strict=True):
        usages, own = by_sid.get(sid, (0, None))
        if ctx.usage == "ugc":
            revenue = Decimal(own or 0).quantize(Decimal("0.000001"))
        else:
            revenue = (ctx.rate * usages).quantize(Decimal("0.01"))
        currency = currencies.get(territory, "EUR")
        declared[currency] = declared.get(currency, Decimal(0)) + revenue
        summary_cells: dict[str, object] = {
            "SummaryRecordId": sid,
            "CommercialModel": ctx.commercial_model,
            "UseType": ctx.use_type,
            "Territory": territory,
            "ServiceDescription": ctx.service,
            "Usages": usages,
            "NetRevenue": f"{revenue:f}",
        }
        if versions.summary == "SY02.02":
            summary_cells |= {"CurrencyOfReporting": currency, "ContentCategory": "Music"}
        else:
            summary_cells["Currency"] = currency
        summary_lines.append(record(versions.summary, **summary_cells))
    if variant == "single":
        foot = record("SRFO", NumberOfLinesInReport=lines, NumberOfSummaryRecords=len(contexts))
    else:
        last = file_number == number_of_files
        foot = record(
            "FOOT",
            NumberOfLinesInFile=lines,
            NumberOfLinesInReport=lines if last and number_of_files == 1 else "",
            NumberOfSummaryRecords=len(contexts),
            NumberOfBlocksInFile=blocks,
            NumberOfBlocksInReport=blocks if last and number_of_files == 1 else "",
        )
    header = "\n".join([head, *comment_lines[:2], *summary_lines, *comment_lines[2:]]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                _write_body(cast(IO[bytes], gz), header, body, foot)
        else:
            _write_body(raw, header, body, foot)
    assert body.height + fixed == lines, (body.height, fixed, lines)
    return WrittenDsr(
        path=path,
        lines=lines,
        summary_records=len(contexts),
        blocks=blocks,
        usage_records=usage.height,
        declared_totals=declared,
        usages=int(usage["units"].sum()),
        period_start=start,
        period_end=end,
        message_id=message_id,
    )


def _write_body(out: IO[bytes], header: str, body: pl.DataFrame, foot: str) -> None:
    out.write(header.encode())
    body.select("line").write_csv(
        out, include_header=False, quote_style="never", line_terminator="\n"
    )
    out.write(foot.encode() + b"\n")


def _block_sizes(
    budget: int,
    rng: random.Random,
    profile: str,
    tracks: tuple[int, int],
    usages: tuple[int, int],
    fixed: int,
) -> list[tuple[int, int]]:
    """(resources, usage records) per block, filling ``budget`` body lines exactly."""
    head = 0 if profile == "UgcProfile" else 1  # RE01 (BasicAudio) per block
    minimum = head + 2
    if budget < minimum:
        raise ValueError(f"the file needs at least {fixed + minimum} lines")
    sizes: list[tuple[int, int]] = []
    left = budget
    while left:
        t = 1 if profile == "UgcProfile" else rng.randint(*tracks)
        s = rng.randint(*usages)
        if head + t + s > left:
            if left >= minimum:
                t = min(t, left - head - 1)
                s = left - head - t
            else:  # one or two lines left: more usage records in the previous block
                prev_t, prev_s = sizes[-1]
                sizes[-1] = (prev_t, prev_s + left)
                break
        sizes.append((t, s))
        left -= head + t + s
    return sizes


def _block_body(
    sizes: list[tuple[int, int]],
    seed: int,
    profile: str,
    versions: _Versions,
    contexts: list[tuple[str, _Context]],
    summary_ids: list[str],
    end: dt.date,
) -> pl.DataFrame:
    ugc = profile == "UgcProfile"
    head = 0 if ugc else 1
    blocks = pl.DataFrame(
        {"t": [t for t, _ in sizes], "s": [s for _, s in sizes]},
        schema={"t": pl.Int64, "s": pl.Int64},
    ).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("b"),
        (pl.col("t") + pl.col("s") + head).cum_sum().shift(1, fill_value=0).alias("start"),
    )
    b = pl.col("b")
    block_id = pl.format("B{}", b)
    artist = pl.format("Artist {}", b % 997 + 1)
    frames: list[pl.DataFrame] = []
    if not ugc:
        upc = pl.format("0{}", (b + seed * 1_000_003 % 10_000_000).cast(pl.String).str.zfill(11))
        rel = blocks.select(
            pl.col("start").alias("pos"),
            _line(
                "RE01",
                {
                    "BlockId": block_id,
                    "ReleaseReference": "R0",
                    "DspReleaseId": pl.format("REL{}", b),
                    "ProprietaryReleaseId": pl.format("LABEL::CAT{}", b),
                    "ICPN": _gtin13_expr(upc),
                    "DisplayArtistName": artist,
                    "Title": pl.format("Album {}", b),
                    "ReleaseType": "Album",
                },
            ).alias("line"),
        )
        frames.append(rel.with_columns(pl.lit(None, dtype=pl.String).alias("sid")))
    tracks = (
        blocks.select("b", "start", "t", pl.int_ranges(pl.col("t")).alias("j"))
        .explode("j")
        .with_columns((pl.col("start") + head + pl.col("j")).alias("pos"))
    )
    n = (pl.col("b") * 16 + pl.col("j")).alias("n")
    isrc = pl.format(
        "GBT{}26{}",
        (pl.col("n") // 100_000 % 100).cast(pl.String).str.zfill(2),
        (pl.col("n") % 100_000).cast(pl.String).str.zfill(5),
    )
    resource_cells: dict[str, pl.Expr | str] = {
        "BlockId": block_id,
        "ResourceReference": pl.format("A{}", pl.col("j") + 1),
        "DspResourceId": pl.format("RES{}", pl.col("n")),
        "ISRC": isrc,
        "Title": pl.format("Track {} of Album {}", pl.col("j") + 1, b),
        "DisplayArtistName": artist,
        "Duration": "PT3M30S",
        "ResourceType": "SoundRecording",
    }
    frames.append(
        tracks.with_columns(n)
        .select("pos", _line(versions.resource, resource_cells).alias("line"))
        .with_columns(pl.lit(None, dtype=pl.String).alias("sid"))
    )
    uses = (
        blocks.select("b", "start", "t", "s", pl.int_ranges(pl.col("s")).alias("i"))
        .explode("i")
        .with_columns((pl.col("start") + head + pl.col("t") + pl.col("i")).alias("pos"))
    )
    pos = pl.col("pos")
    which = _rnd(pos, seed) % len(contexts)
    uses = uses.with_columns(
        which.alias("ctx"),
        (_rnd(pos, seed + 1) % pl.col("t")).alias("j"),
        (_rnd(pos, seed + 2) % 4_999 + 1).alias("streams"),
        (_rnd(pos, seed + 3) % 5 + 1).alias("downloads"),
        (_rnd(pos, seed + 4) % 40 == 0).cast(pl.Int64).alias("returns"),
    ).with_columns(n)
    kinds = [ctx.usage for _, ctx in contexts]
    rates = [str(ctx.rate) for _, ctx in contexts]
    uses = uses.with_columns(
        pl.col("ctx").replace_strict(list(range(len(kinds))), kinds).alias("usage"),
        pl.col("ctx").replace_strict(list(range(len(kinds))), summary_ids).alias("sid"),
        pl.col("ctx")
        .replace_strict(list(range(len(rates))), rates, return_dtype=pl.String)
        .cast(pl.Decimal(38, 6))
        .alias("rate"),
    )
    common: dict[str, pl.Expr | str] = {
        "BlockId": block_id,
        "SummaryRecordId": pl.col("sid"),
        "SalesTransactionId": pl.format("T{}", pos),
    }
    if ugc:
        views = pl.col("streams") * 20
        own = (views.cast(pl.Decimal(38, 6)) * pl.col("rate")).cast(pl.Decimal(38, 6))
        ugc_cells = {
            **common,
            "Usages": views,
            "NetRevenue": own,
            "ValidityPeriodStart": "",
        }
        if versions.ugc == "SU03.02":
            ugc_cells["DspResourceId"] = pl.format("RES{}", pl.col("n"))
            ugc_cells["ContentCategory"] = "Music"
        else:
            ugc_cells["DspReleaseId"] = pl.format("UGC{}", pos)
        frames.append(
            uses.select(
                "pos",
                "sid",
                _line(versions.ugc, ugc_cells).alias("line"),
                views.alias("units"),
                own.alias("own"),
            )
        )
    else:
        resource = pl.format("A{}", pl.col("j") + 1)
        stream = _line(
            versions.stream,
            {**common, "TransactedResource": resource, "IsRoyaltyBearing": "true",
             "NumberOfStreams": pl.col("streams")},
        )  # fmt: skip
        download = _line(
            versions.download,
            {
                **common,
                "TransactedResource": resource,
                "IsRoyaltyBearing": "true",
                "SalesUpgrade": "false",
                "Usages": pl.col("downloads"),
                "Returns": pl.col("returns"),
                "PriceConsumerPaidExcSalesTax": "0.99",
            },
        )
        is_dl = pl.col("usage") == "download"
        frames.append(
            uses.select(
                "pos",
                "sid",
                pl.when(is_dl).then(download).otherwise(stream).alias("line"),
                pl.when(is_dl)
                .then(pl.col("downloads") - pl.col("returns"))
                .otherwise(pl.col("streams"))
                .alias("units"),
                pl.lit(None, dtype=pl.Decimal(38, 6)).alias("own"),
            )
        )
    return pl.concat(frames, how="diagonal").sort("pos")


def _single_body(
    budget: int,
    seed: int,
    profile: str,
    contexts: list[tuple[str, _Context]],
    summary_ids: list[str],
    end: dt.date,
) -> tuple[pl.DataFrame, int]:
    pos = pl.int_range(budget, dtype=pl.Int64).alias("pos")
    frame = pl.select(pos).with_columns(
        (_rnd(pl.col("pos"), seed) % len(contexts)).alias("ctx"),
        (_rnd(pl.col("pos"), seed + 5) % 20_000 + 1).alias("b"),
        (_rnd(pl.col("pos"), seed + 6) % 12).alias("j"),
        (_rnd(pl.col("pos"), seed + 2) % 4_999 + 1).alias("streams"),
        (_rnd(pl.col("pos"), seed + 3) % 5 + 1).alias("downloads"),
    )
    kinds = [ctx.usage for _, ctx in contexts]
    rates = [str(ctx.rate) for _, ctx in contexts]
    idx = list(range(len(kinds)))
    frame = frame.with_columns(
        pl.col("ctx").replace_strict(idx, kinds).alias("usage"),
        pl.col("ctx").replace_strict(idx, summary_ids).alias("sid"),
        pl.col("ctx")
        .replace_strict(idx, rates, return_dtype=pl.String)
        .cast(pl.Decimal(38, 6))
        .alias("rate"),
        (pl.col("b") * 16 + pl.col("j")).alias("n"),
    )
    b, n = pl.col("b"), pl.col("n")
    # 20,000 releases: their UPCs once, then looked up by release number
    upcs = pl.select(pl.int_range(1, 20_001, dtype=pl.Int64).alias("b")).select(
        _gtin13_expr(
            pl.format("0{}", (pl.col("b") + seed * 1_000_003 % 10_000_000).cast(pl.String)
                      .str.zfill(11))
        )
    ).to_series()  # fmt: skip
    cells: dict[str, pl.Expr | str] = {
        "SummaryRecordId": pl.col("sid"),
        "DspResourceId": pl.format("RES{}", n),
        "ISRC": pl.format(
            "GBT{}26{}",
            (n // 100_000 % 100).cast(pl.String).str.zfill(2),
            (n % 100_000).cast(pl.String).str.zfill(5),
        ),
        "ResourceTitle": pl.format("Track {} of Album {}", pl.col("j") + 1, b),
        "ResourceDisplayArtistName": pl.format("Artist {}", b % 997 + 1),
        "ResourceType": "SoundRecording",
        "DspReleaseId": pl.format("REL{}", b),
        "ProprietaryReleaseId": pl.format("LABEL::CAT{}", b),
        "ICPN": pl.lit(upcs).gather(b - 1),
        "ReleaseDisplayArtistName": pl.format("Artist {}", b % 997 + 1),
        "ReleaseTitle": pl.format("Album {}", b),
        "SalesTransactionId": pl.format("T{}", pl.col("pos")),
    }
    if profile == "UgcProfile":
        views = pl.col("streams") * 20
        own = (views.cast(pl.Decimal(38, 6)) * pl.col("rate")).cast(pl.Decimal(38, 6))
        sr03 = {k: v for k, v in cells.items() if k != "ResourceType"}
        sr03 |= {
            "ResourceType": "SoundRecording",
            "WorkTitle": pl.format("Track {} of Album {}", pl.col("j") + 1, b),
            "DspWorkId": pl.format("W{}", n),
            "Usages": views,
            "NetRevenue": own,
            "ValidityPeriodStart": "2020-01-01",
            "ValidityPeriodEnd": end.isoformat(),
            "ContentCategory": "Music",
        }
        body = frame.select(
            "pos", "sid", _line("SR03", sr03).alias("line"), views.alias("units"),
            own.alias("own"),
        )  # fmt: skip
        return body, 0
    is_dl = pl.col("usage") == "download"
    download = _line(
        "SR01",
        {**cells, "NumberOfTransactedResources": "1", "IsRoyaltyBearing": "true",
         "SalesUpgrade": "false", "Downloads": pl.col("downloads"), "Returns": "0",
         "PriceConsumerPaidExcSalesTax": "0.99"},
    )  # fmt: skip
    stream = _line(
        "SR02",
        {**cells, "IsRoyaltyBearing": "true", "NumberOfStreams": pl.col("streams")},
    )
    body = frame.select(
        "pos",
        "sid",
        pl.when(is_dl).then(download).otherwise(stream).alias("line"),
        pl.when(is_dl).then(pl.col("downloads")).otherwise(pl.col("streams")).alias("units"),
        pl.lit(None, dtype=pl.Decimal(38, 6)).alias("own"),
    )
    return body, 0
