"""Sales reports of the sample label, as the DSPs and a distributor would send them.

Deterministic from a seed, written into the demo organisation's local drop: an Apple
financial report (with its Total_* trailer), Spotify per-currency reports (with a fine),
a gzipped DDEX DSR flat file, a distributor statement (Sale/Void rows) — plus the quirks real files
have: a few bad lines, an unknown ISRC, and one unreadable file (a truncated gzip).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pipelines.scenario import DISTRIBUTOR_COLUMNS
from schemas.store.models import Artist, Release, Track

PERIOD = "2026-01"
Q6 = Decimal("0.000001")


@dataclass(frozen=True)
class Product:
    isrc: str
    upc: str
    title: str
    artist: str


def catalogue(session: Session, org_id: int) -> list[Product]:
    rows = session.execute(
        sa.select(Track.isrc, Release.upc, Track.title, Artist.name)
        .join(Release, Track.release_id == Release.id)
        .join(Artist, Track.artist_id == Artist.id)
        .where(Track.org_id == org_id)
        .order_by(Track.id)
    )
    return [Product(*r) for r in rows]


def _money(rng: random.Random, low: float, high: float) -> Decimal:
    # Draw in integer micro-units so no float ever becomes an amount.
    return Decimal(rng.randint(int(low * 1e6), int(high * 1e6))) * Q6


def write_apple(path: Path, products: list[Product], rng: random.Random) -> None:
    header = [
        "Start Date",
        "End Date",
        "UPC",
        "ISRC/ISBN",
        "Vendor Identifier",
        "Quantity",
        "Partner Share",
        "Extended Partner Share",
        "Partner Share Currency",
        "Sales or Return",
        "Apple Identifier",
        "Artist/Show/Developer/Author",
        "Title",
        "Label/Studio/Network/Developer/Publisher",
        "Grid",
        "Product Type Identifier",
        "ISAN/Other Identifier",
        "Country Of Sale",
        "Pre-order Flag",
        "Promo Code",
        "Customer Price",
        "Customer Currency",
    ]
    lines, total, units = [], Decimal(0), 0
    for i, p in enumerate(rng.sample(products, 14)):
        qty = rng.randint(1, 40)
        share = Decimal("0.70")
        sr = "R" if i == 3 else "S"
        ext = share * qty * (-1 if sr == "R" else 1)
        qty_signed = -qty if sr == "R" else qty
        total += ext
        units += qty_signed
        lines.append(
            [
                "12/28/2025",
                "01/31/2026",
                p.upc,
                p.isrc,
                f"NB-{p.isrc[-5:]}",
                str(qty_signed),
                str(share),
                str(ext),
                "GBP",
                sr,
                f"17{i:08d}",
                p.artist,
                p.title,
                "Northbound Records",
                "",
                "S",
                "",
                rng.choice(["GB", "GB", "IE", "FR"]),
                "",
                "",
                "0.99",
                "GBP",
            ]
        )
    body = ["\t".join(header)] + ["\t".join(r) for r in lines]
    body += [f"Total_Rows\t{len(lines)}", f"Total_Amount\t{total}", f"Total_Units\t{units}"]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")


def write_spotify(
    path: Path,
    products: list[Product],
    rng: random.Random,
    currency: str,
    countries: list[str],
    *,
    unknown_isrc: bool,
) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "country",
            "product",
            "track_uri",
            "isrc",
            "upc",
            "track_name",
            "artist_name",
            "streams",
            "revenue",
            "currency",
        ]
    )
    for p in products:
        for country in rng.sample(countries, 2):
            for product in ("premium", "free"):
                streams = rng.randint(50, 40_000)
                rate = Decimal("0.0035") if product == "premium" else Decimal("0.0011")
                w.writerow(
                    [
                        country,
                        product,
                        f"spotify:track:{p.isrc.lower()}",
                        p.isrc,
                        p.upc,
                        p.title,
                        p.artist,
                        streams,
                        (rate * streams).quantize(Q6),
                        currency,
                    ]
                )
    # A fine for artificial streams arrives as a negative line.
    p = products[0]
    w.writerow(
        [
            countries[0],
            "premium",
            f"spotify:track:{p.isrc.lower()}",
            p.isrc,
            p.upc,
            p.title,
            p.artist,
            0,
            "-12.500000",
            currency,
        ]
    )
    if unknown_isrc:  # a recording the label has not (yet) set up: it lands in suspense
        w.writerow(
            [
                countries[0],
                "premium",
                "spotify:track:unknown",
                "GBNBR2699999",
                "",
                "Unreleased Demo",
                "Northern Quay",
                812,
                "2.842000",
                currency,
            ]
        )
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_distributor(path: Path, products: list[Product], rng: random.Random) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(DISTRIBUTOR_COLUMNS)
    for i, p in enumerate(products):
        store = rng.choice(["Deezer", "Amazon Music", "Tidal"])
        units = rng.randint(10, 9000)
        gross = _money(rng, 0.5, 40)
        net = (gross * Decimal("0.85")).quantize(Q6)
        sale = "Void" if i == 5 else "Sale"
        amount = "12,5O" if i == 9 else str(net)  # a mistyped amount: one bad line
        # and a currency that is no ISO 4217 code (a territory never refuses a line: one
        # nobody can place is read as unknown). The draws stay as they were: same figures.
        country = "GB" if i == 11 else rng.choice(["GB", "DE", "US", "NL"])
        currency = "EUX" if i == 11 else "EUR"
        w.writerow(
            [
                PERIOD,
                sale,
                store,
                country,
                "Stream",
                "",
                p.title,
                p.artist,
                p.upc,
                p.isrc,
                "",
                units,
                gross,
                "85",
                amount,
                currency,
            ]
        )
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_dsr_report(path: Path, products: list[Product], *, seed: int, lines: int = 400) -> None:
    """A gzipped DDEX DSR (BasicAudio, block variant) whose recordings are the label's own.

    The writer invents ISRCs; they are swapped, consistently, for the catalogue's (the ISRC
    cell is not part of any DSR count or total, so the file stays valid)."""
    import re
    import tempfile

    from demo.dsr_writer import write_dsr

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "dsr.tsv"
        write_dsr(
            plain,
            lines=lines,
            seed=seed,
            sender="Spotify",
            recipient="Northbound",
            period=PERIOD,
            territories=("GB", "DE", "US"),
        )
        mapping: dict[str, str] = {}

        def ours(m: re.Match[str]) -> str:
            return mapping.setdefault(m.group(0), products[len(mapping) % len(products)].isrc)

        text = re.sub(r"\bGBT\d{2}26\d{5}\b", ours, plain.read_text(encoding="utf-8"))
    path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))


def write_truncated_gzip(path: Path, payload: bytes) -> None:
    data = gzip.compress(payload)
    path.write_bytes(data[: len(data) // 2])


def write_reports(drop: Path, products: list[Product], *, seed: int) -> list[Path]:
    """Write the month's reports into ``drop``; returns the paths written."""
    rng = random.Random(seed)
    drop.mkdir(parents=True, exist_ok=True)
    written = []
    apple = drop / "80012345_0126_GB.txt"
    write_apple(apple, products, rng)
    written.append(apple)
    for currency, countries, unknown in (
        ("EUR", ["DE", "FR", "NL", "ES"], True),
        ("USD", ["US", "CA", "MX"], False),
    ):
        spotify = drop / f"spotify_northbound_202601_{currency}.csv"
        write_spotify(
            spotify, rng.sample(products, 12), rng, currency, countries, unknown_isrc=unknown
        )
        written.append(spotify)
    dsr = drop / "DSR_Northbound_Spotify_Premium_2026-01_WW_1of1_20260205T000000.tsv.gz"
    write_dsr_report(dsr, products, seed=seed)
    written.append(dsr)
    statement = drop / "statement_northbound_2026-01.csv"
    write_distributor(statement, rng.sample(products, 16), rng)
    written.append(statement)
    broken = drop / "statement_northbound_2025-12.csv.gz"
    write_truncated_gzip(broken, statement.read_bytes())
    written.append(broken)
    return written
