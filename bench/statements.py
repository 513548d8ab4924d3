"""How fast a label's statements export: ``run_bench(10_000)`` builds that many synthetic but
realistic statements and renders every format (PDF, XLSX, CSV, JSON and the self-billing
invoices) through the real export path (``export_statements``: files, hashes, manifest).

The statements are seeded (the same ``seed`` gives the same statements): one to three
contracts each, about fifteen sources and sixty territories, Zipf-like track popularity, six
periods of history, self-billing invoices for some payees, and a few hostile or non-Latin
titles and names. Every statement's detail adds up to its earnings (``Statement.check``).

    uv run python -c "from bench.statements import run_bench; print(run_bench(10000))"
"""

from __future__ import annotations

import datetime as dt
import random
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.statements import FORMATS
from pipelines.statements.data import (
    CENT,
    DETAIL_COLUMNS,
    HISTORY_PERIODS,
    TOP_TRACKS,
    Amount,
    HistoryPoint,
    Invoice,
    Party,
    Statement,
    territory_name,
)
from pipelines.statements.export import export_statements
from schemas.money import vat_cents
from schemas.statement_figures import FIGURES

PERIOD = "2026-H1"
PAST_PERIODS = ("2023-H2", "2024-H1", "2024-H2", "2025-H1", "2025-H2")
MONTHS = tuple(f"2026-{m:02d}" for m in range(1, 7))
ISSUED = dt.datetime(2026, 7, 15, 9, 30, tzinfo=dt.UTC)
LABEL = Party(
    "Benchmark Records Ltd", "1 Bench Street, Leeds LS1 1AA, United Kingdom", "GB434031494"
)
SOURCES = (
    "spotify",
    "apple",
    "youtube",
    "amazon",
    "deezer",
    "tidal",
    "soundcloud",
    "tiktok",
    "meta",
    "pandora",
    "napster",
    "anghami",
    "boomplay",
    "jiosaavn",
    "distributor_csv",
)
# fmt: off
TERRITORIES = (
    "GB", "US", "DE", "FR", "ES", "IT", "NL", "SE", "NO", "DK", "FI", "IE", "PT", "PL", "CZ",
    "AT", "CH", "BE", "JP", "KR", "AU", "NZ", "CA", "MX", "BR", "AR", "CL", "CO", "PE", "ZA",
    "NG", "KE", "EG", "MA", "TR", "GR", "RO", "HU", "BG", "HR", "SI", "SK", "LT", "LV", "EE",
    "IS", "IN", "ID", "PH", "TH", "VN", "MY", "SG", "HK", "TW", "CN", "AE", "SA", "IL", "UA",
    "WW",
)
# fmt: on
USAGE = (("stream", 0.8), ("download", 0.08), ("ugc", 0.1), ("sync", 0.02))
FIRST = ("Mara", "Aoife", "Kofi", "Lena", "Sam", "Cian", "Noor", "Ravi", "Elena", "Tomás", "Jo")
LAST = ("Ellison", "Byrne", "Mensah", "Brandt", "Okafor", "Walsh", "Haddad", "Patel", "Novak")
UNICODE_NAMES = ("Inês Duarte", "山田 花子", "Дмитрий Орлов", "Zoë Ångström", "Ngozi Ọkọnkwọ")
# fmt: off
WORDS = (
    "Harbour", "Lights", "Slow", "Bridges", "Quiet", "Water", "Distant", "Signal", "Silver",
    "Lines", "Salt", "Weather", "Rooms", "Northern", "Night", "Glass", "River", "Paper", "Moon",
    "Echo", "Static", "Velvet", "Morning", "Shore", "Ember", "Drift",
)
# fmt: on
HOSTILE = (
    '=HYPERLINK("http://evil.example/x","click") <script>alert(1)</script>',
    "-1 Minus Sign",
    "+44 Plus Sign",
    "@mention Title",
    "夜の東京 (Tokyo at Night)",
    "An Extremely Long Title " * 14,
)
CURRENCIES = (("GBP", 0.5), ("EUR", 0.3), ("USD", 0.2))
VAT_RATE = Decimal("0.20")


def _cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def _breakdown(rows: dict[tuple[str, str], list[Any]], *, territory: bool = False) -> list[Amount]:
    out = [
        Amount(key, territory_name(key) if territory else label, amount, qty)
        for (key, label), (amount, qty) in rows.items()
    ]
    out.sort(key=lambda a: (-a.amount, a.key))
    return out


def _contract_figures(rng: random.Random, earnings: Decimal, pays: bool) -> dict[str, Decimal]:
    """One contract's movements, following the engine's order (royalty_engine.balances)."""
    zero = Decimal("0.00")
    opening = zero if rng.random() < 0.5 else _cents(rng.randint(-2_000_000, 50_000))
    advances = _cents(rng.choice((0, 0, 0, 500_000, 1_500_000))) if rng.random() < 0.2 else zero
    costs = _cents(rng.randint(0, 200_000)) if rng.random() < 0.15 else zero
    held = (max(earnings, zero) * Decimal("0.10")).quantize(CENT, ROUND_HALF_UP)
    released = _cents(rng.randint(0, 20_000)) if rng.random() < 0.3 else zero
    charges = advances + costs
    balance = opening + earnings - charges - held + released
    unrecouped = max(-(opening - charges), zero)
    recouped = min(max(earnings - held + released, zero), unrecouped)
    tax = payable = zero
    closing = balance
    if pays and balance > 0:
        tax = (
            (balance * Decimal("0.05")).quantize(CENT, ROUND_HALF_UP)
            if rng.random() < 0.1
            else zero
        )
        payable = balance - tax
        closing = zero
    return {
        "opening": opening,
        "earnings": earnings,
        "advances": advances,
        "costs": costs,
        "recouped": recouped,
        "reserve_held": held,
        "reserve_released": released,
        "tax": tax,
        "payable": payable,
        "closing": closing,
        "carried_forward": closing,
        "reserves_outstanding": held + _cents(rng.randint(0, 10_000)),
    }


def synthetic_statement(index: int, *, lines: int = 120, seed: int = 7) -> Statement:
    """The ``index``-th synthetic statement (deterministic for ``seed``)."""
    rng = random.Random(seed * 1_000_003 + index)
    payee_id = index + 1
    currency = rng.choices([c for c, _ in CURRENCIES], [w for _, w in CURRENCIES])[0]
    if index % 97 == 3:
        name = UNICODE_NAMES[index % len(UNICODE_NAMES)]
    else:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {payee_id}"
    self_billing = index % 7 == 0
    payee = Party(
        name,
        f"{rng.randint(1, 200)} {rng.choice(WORDS)} Road, Bristol BS{rng.randint(1, 9)} 4QA",
        "GB980780684" if self_billing else None,
    )
    contracts = [f"BN-{payee_id:05d}-{k + 1}" for k in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    n_tracks = rng.randint(6, 30)
    tracks = []
    for k in range(n_tracks):
        title = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
        if index % 53 == 5 and k < 2:
            title = HOSTILE[(index + k) % len(HOSTILE)]
        tracks.append((f"GBBEN{26:02d}{payee_id % 100:02d}{k:03d}", title, f"50634500{k:05d}"))
    track_weights = [1 / (k + 1) ** 1.1 for k in range(n_tracks)]
    source_weights = [1 / (k + 1) ** 0.9 for k in range(len(SOURCES))]
    territory_weights = [1 / (k + 1) ** 1.2 for k in range(len(TERRITORIES))]
    n_lines = max(1, int(lines * rng.uniform(0.8, 1.2)))
    picks = zip(
        rng.choices(range(n_tracks), track_weights, k=n_lines),
        rng.choices(SOURCES, source_weights, k=n_lines),
        rng.choices(TERRITORIES, territory_weights, k=n_lines),
        rng.choices([u for u, _ in USAGE], [w for _, w in USAGE], k=n_lines),
        strict=True,
    )
    rows = []
    for t, source, territory, usage in picks:
        isrc, title, upc = tracks[t]
        quantity = rng.randint(1, 40_000) if usage != "download" else rng.randint(1, 40)
        cents = max(1, quantity // rng.randint(150, 400)) if usage != "download" else quantity * 70
        if rng.random() < 0.02:
            cents = -cents  # a return or chargeback
        rows.append(
            (
                contracts[t % len(contracts)],
                isrc,
                title,
                upc,
                f"{title[:40]} (Single)",
                source,
                territory,
                usage,
                rng.choice(MONTHS),
                quantity,
                _cents(cents),
                currency,
            )
        )
    rows.sort(key=lambda r: (r[0], r[8], r[5], r[1], r[6], r[7]))

    per_contract: dict[str, Decimal] = defaultdict(Decimal)
    by: dict[str, dict[tuple[str, str], list[Any]]] = {
        k: defaultdict(lambda: [Decimal(0), 0]) for k in ("source", "territory", "usage", "track")
    }
    for r in rows:
        amount, qty = r[10], r[9]
        per_contract[r[0]] += amount
        for key, bucket in (
            ((r[5], r[5]), "source"),
            ((r[6], r[6]), "territory"),
            ((r[7], r[7]), "usage"),
            ((r[1], r[2]), "track"),
        ):
            acc = by[bucket][key]
            acc[0] += amount
            acc[1] += qty
    pays = rng.random() < 0.6
    contract_rows: list[dict[str, Any]] = []
    for ref in contracts:
        figs = _contract_figures(rng, per_contract.get(ref, Decimal("0.00")), pays)
        status = "recouped" if figs["closing"] >= 0 else "unrecouped"
        contract_rows.append({"reference": ref, "status": status, **figs})
    figures = {f: sum((c[f] for c in contract_rows), Decimal("0.00")) for f in FIGURES}
    scale = max(int(figures["earnings"] * 100), 100)
    history = [
        HistoryPoint(
            p, _cents(int(scale * rng.uniform(0.4, 1.6))), Decimal("0.00"), Decimal("0.00")
        )
        for p in PAST_PERIODS[-(HISTORY_PERIODS - 1) :]
    ]
    history.append(
        HistoryPoint(PERIOD, figures["earnings"], figures["payable"], figures["closing"])
    )
    invoice = None
    if self_billing and figures["payable"] > 0:
        vat = vat_cents(figures["payable"] * VAT_RATE)
        invoice = Invoice(
            f"SB-bench-{PERIOD}-v1-{payee_id}-{currency}",
            ISSUED.date(),
            figures["payable"],
            VAT_RATE,
            vat,
            figures["payable"] + vat,
            to_pay=figures["payable"] + vat,
        )
    columns = list(DETAIL_COLUMNS)
    frame = pl.DataFrame(
        rows,
        schema={
            c: (pl.Int64 if c == "quantity" else pl.Decimal(38, 2) if c == "amount" else pl.String)
            for c in columns
        },
        orient="row",
    )
    statement = Statement(
        statement_id=payee_id,
        org_id=1,
        org_slug="bench",
        label=LABEL,
        payee_id=payee_id,
        payee=payee,
        run_id=1,
        version=1,
        period=PERIOD,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 6, 30),
        run_status="locked",
        issued=ISSUED,
        currency=currency,
        figures=figures,
        contracts=contract_rows,
        by_source=_breakdown(by["source"]),
        by_territory=_breakdown(by["territory"], territory=True),
        by_usage=_breakdown(by["usage"]),
        top_tracks=_breakdown(by["track"])[:TOP_TRACKS],
        history=history,
        lines=frame,
        invoice=invoice,
        invoice_refused=None
        if invoice or not self_billing
        else "nothing_payable: no invoice for a statement with nothing to pay",
    )
    statement.check()
    return statement


def synthetic_statements(payees: int, *, lines: int = 120, seed: int = 7) -> Iterator[Statement]:
    for index in range(payees):
        yield synthetic_statement(index, lines=lines, seed=seed)


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _max_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def run_bench(
    payees: int,
    *,
    workers: int = 2,
    lines_per_payee: int = 120,
    seed: int = 7,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Export ``payees`` synthetic statements in every format; what it took."""
    with tempfile.TemporaryDirectory(prefix="statements-bench-") as tmp:
        folder = (out_dir or Path(tmp)) / "export"
        started = time.perf_counter()
        cpu_self = resource.getrusage(resource.RUSAGE_SELF)
        cpu_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = export_statements(
            synthetic_statements(payees, lines=lines_per_payee, seed=seed),
            folder,
            run_id=1,
            formats=FORMATS,
            workers=workers,
        )
        seconds = time.perf_counter() - started
        on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_self = _max_rss_mib(resource.RUSAGE_SELF)
    rss_children = _max_rss_mib(resource.RUSAGE_CHILDREN)
    return {
        "payees": payees,
        "statements": len({f.statement_id for f in result.files}),
        "files": len(result.files),
        "invoices": sum(1 for f in result.files if f.kind == "invoice"),
        "bytes": sum(f.size for f in result.files),
        "bytes_on_disk": on_disk,
        "seconds": round(seconds, 2),
        "payees_per_second": round(payees / seconds, 1) if seconds else float("inf"),
        "peak_rss_mib": round(max(rss_self, rss_children), 1),
        "peak_rss_self_mib": round(rss_self, 1),
        "peak_rss_children_mib": round(rss_children, 1),
        "workers": workers,
        # CPU seconds of this process (statements, files, hashes) and of the worker processes
        "cpu_self_seconds": round(_cpu(self_usage) - _cpu(cpu_self), 2),
        "cpu_workers_seconds": round(_cpu(children_usage) - _cpu(cpu_children), 2),
        "lines_per_payee": lines_per_payee,
    }
