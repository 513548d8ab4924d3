"""The statement export benchmark on a small run: every format of every synthetic statement
goes through the real export path (files, hashes, manifest)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from bench.statements import run_bench, synthetic_statement


def test_synthetic_statements_add_up_and_are_seeded() -> None:
    a, b = synthetic_statement(3, lines=50, seed=1), synthetic_statement(3, lines=50, seed=1)
    assert a.payee == b.payee and a.figures == b.figures and a.lines.equals(b.lines)
    assert synthetic_statement(3, lines=50, seed=2).lines.equals(a.lines) is False
    a.check()  # detail adds up to earnings
    assert sum((x.amount for x in a.by_territory), Decimal(0)) == a.figures["earnings"]
    assert len(a.history) == 6 and a.history[-1].earnings == a.figures["earnings"]
    balance = (
        a.figures["opening"]
        + a.figures["earnings"]
        - a.figures["advances"]
        - a.figures["costs"]
        - a.figures["reserve_held"]
        + a.figures["reserve_released"]
    )
    assert balance == a.figures["closing"] + a.figures["payable"] + a.figures["tax"]


def test_run_bench_exports_every_format(tmp_path: Path) -> None:
    report = run_bench(20, workers=1, lines_per_payee=40, out_dir=tmp_path)
    assert report["payees"] == report["statements"] == 20
    assert report["workers"] == 1
    expected = [synthetic_statement(i, lines=40) for i in range(20)]
    invoices = sum(st.invoice is not None for st in expected)
    assert invoices >= 1  # every 7th payee self-bills; some have something payable
    assert report["invoices"] == invoices
    assert report["files"] == 20 * 4 + report["invoices"]
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert len(manifest["files"]) == report["files"]
    assert report["bytes"] == sum(f["size"] for f in manifest["files"])
    assert report["bytes_on_disk"] > report["bytes"]  # plus the manifest
    assert {f["format"] for f in manifest["files"]} == {"pdf", "xlsx", "csv", "json"}
    assert report["seconds"] > 0 and report["payees_per_second"] > 0
    assert report["peak_rss_mib"] >= report["peak_rss_self_mib"] > 0
