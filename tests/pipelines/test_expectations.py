from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.ingest.expectations import BatchReport, run_batch_expectations
from royalty_engine.validate import ERRORS_SCHEMA
from schemas import revenue

SUITES = ("accepted_summary", "findings_summary", "reconciliation", "rejected_lines")


def lines(*rows: tuple[int, str, str, str, int, str, str | None]) -> pl.DataFrame:
    """Accepted lines: (line_no, territory, usage_type, currency, quantity, amount, match)."""
    frame = pl.DataFrame(
        [(n, t, u, c, q, Decimal(a), m) for n, t, u, c, q, a, m in rows],
        schema={
            "line_no": pl.Int64,
            "territory": pl.String,
            "usage_type": pl.String,
            "currency": pl.String,
            "quantity": pl.Int64,
            "amount": revenue.AMOUNT,
            "match_method": pl.String,
        },
        orient="row",
    )
    return revenue.conform(frame, revenue.CANONICAL).collect()


GOOD = lines(
    (1, "GB", "stream", "EUR", 10, "1.50", "isrc"),
    (2, "US", "stream", "USD", 20, "2.25", None),
    (3, "US", "download", "USD", 5, "0.10", "upc"),
    (4, "DE", "stream", "EUR", 1, "3.000000000001", "isrc"),
)


def findings(*rows: tuple[int | None, str, str, str]) -> pl.DataFrame:
    """Findings: (line_no, field, code, severity)."""
    return pl.DataFrame(
        [(n, f, c, f"{f}: {c}", s) for n, f, c, s in rows], schema=ERRORS_SCHEMA, orient="row"
    )


# Line 2 carries a warning (kept); no line was set aside.
FINDINGS = findings((2, "isrc", "invalid_isrc", "warning"))
# ... and line 9 an error: that line was set aside (not in GOOD).
REJECTED = findings((2, "isrc", "invalid_isrc", "warning"), (9, "amount", "missing", "error"))


def run(tmp_path: Path, **kw: Any) -> BatchReport:
    args: dict[str, Any] = {
        "accepted": GOOD,
        "findings": FINDINGS,
        "declared_totals": {"EUR": Decimal("4.500000000001"), "USD": Decimal("2.35")},
        "file_label": "spotify_2026-01.tsv",
        "out_dir": tmp_path,
    }
    return run_batch_expectations(**(args | kw))


def failed(report: BatchReport) -> list[tuple[str, str, str | None]]:
    return [(r["frame"], r["expectation_type"], r["column"]) for r in report.failed]


def text_of(page: Path) -> str:
    html = page.read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def validation_pages(index: Path) -> dict[str, Path]:
    links = set(re.findall(r"validations/[^'\"]+?\.html", index.read_text(encoding="utf-8")))
    return {link.split("/")[1]: index.parent / link for link in links}


def test_good_batch_succeeds_and_writes_data_docs(tmp_path: Path) -> None:
    report = run(tmp_path)

    assert report.success, failed(report)
    assert all(r["success"] and r["exception"] is None for r in report.results)
    assert "Failed" not in report.docs_index.read_text(encoding="utf-8")
    assert report.docs_index == tmp_path / "data_docs" / "index.html"
    assert report.docs_index.is_file()
    index = report.docs_index.read_text(encoding="utf-8")
    for suite in SUITES:
        assert f"expectations/{suite}.html" in index
    pages = validation_pages(report.docs_index)
    assert sorted(pages) == sorted(SUITES)
    assert all(page.is_file() for page in pages.values())
    # The validation pages carry the expectations with what was observed.
    recon = text_of(pages["reconciliation"])
    assert "declared_total_EUR and read_total_EUR must always be equal" in recon
    assert "suspense_share_USD" in recon
    assert "0.957447" in recon  # 2.25 of the 2.35 USD is unmatched
    assert "Succeeded" in recon
    summary = text_of(pages["accepted_summary"])
    assert "^[A-Z]{3}$" in summary and "^[A-Z]{2}$" in summary
    kinds = {(r["frame"], r["expectation_type"], r["column"]) for r in report.results}
    assert {
        ("accepted_summary", "expect_column_values_to_match_regex", "currency"),
        ("accepted_summary", "expect_column_values_to_match_regex", "territory"),
        ("findings_summary", "expect_column_values_to_not_be_in_set", "severity"),
        ("reconciliation", "expect_column_min_to_be_between", "accepted_lines"),
        ("reconciliation", "expect_column_max_to_be_between", "suspense_share_USD"),
    } <= kinds
    observed = {r["column"]: r["observed_value"] for r in report.results}
    assert observed["accepted_lines"] == 4
    assert observed["suspense_share_EUR"] == 0.0


def test_error_finding_among_accepted_lines_fails(tmp_path: Path) -> None:
    report = run(tmp_path, findings=findings((3, "territory", "unknown_territory", "error")))

    assert not report.success
    assert failed(report) == [
        ("findings_summary", "expect_column_values_to_not_be_in_set", "severity")
    ]
    assert report.failed[0]["observed_value"]["unexpected"] == ["error"]
    index = report.docs_index.read_text(encoding="utf-8")
    assert "Failed" in index


def test_unknown_severity_fails(tmp_path: Path) -> None:
    report = run(tmp_path, findings=findings((1, "isrc", "invalid_isrc", "Error")))

    assert failed(report) == [("findings_summary", "expect_column_values_to_be_in_set", "severity")]


def test_declared_total_mismatch_names_the_currency(tmp_path: Path) -> None:
    report = run(tmp_path, declared_totals={"EUR": Decimal("4.50"), "USD": Decimal("2.350")})

    assert not report.success
    assert failed(report) == [
        (
            "reconciliation",
            "expect_column_pair_values_to_be_equal",
            "declared_total_EUR, read_total_EUR",
        )
    ]
    assert report.failed[0]["observed_value"]["unexpected"] == [["4.5", "4.500000000001"]]


def test_declared_currency_never_read_fails(tmp_path: Path) -> None:
    declared = {"EUR": Decimal("4.500000000001"), "USD": Decimal("2.35"), "GBP": Decimal("1")}
    report = run(tmp_path, declared_totals=declared)

    assert [r["column"] for r in report.failed] == ["declared_total_GBP, read_total_GBP"]


def test_rejected_amounts_count_towards_what_was_read(tmp_path: Path) -> None:
    declared = {"EUR": Decimal("5.500000000001"), "USD": Decimal("2.35")}

    assert not run(tmp_path / "a", declared_totals=declared).success
    report = run(tmp_path / "b", declared_totals=declared, rejected_totals={"EUR": Decimal("1.00")})
    assert report.success, failed(report)


def test_empty_batch_fails(tmp_path: Path) -> None:
    report = run(tmp_path, accepted=GOOD.clear(), findings=FINDINGS.clear(), declared_totals={})

    assert not report.success
    assert failed(report) == [
        ("reconciliation", "expect_column_min_to_be_between", "accepted_lines")
    ]
    assert report.docs_index.is_file()


def test_malformed_codes_on_accepted_lines_fail(tmp_path: Path) -> None:
    bad = lines(
        (1, "gb", "stream", "EUR", 1, "1", "isrc"),
        (2, "US", "stream", "usd", 1, "1", "isrc"),
        (3, "FR", "stream", None, 1, "1", "isrc"),  # type: ignore[arg-type]
    )
    report = run(tmp_path, accepted=bad, declared_totals={})

    assert sorted(failed(report)) == [
        ("accepted_summary", "expect_column_values_to_match_regex", "currency"),
        ("accepted_summary", "expect_column_values_to_match_regex", "territory"),
        ("accepted_summary", "expect_column_values_to_not_be_null", "currency"),
    ]
    territory = next(r for r in report.failed if r["column"] == "territory")
    assert territory["observed_value"]["unexpected"] == ["gb"]


def test_suspense_share_over_threshold_warns_without_failing(tmp_path: Path) -> None:
    report = run(tmp_path, suspense_threshold=0.5)

    assert report.success  # suspense never blocks the period
    assert [(r["column"], r["severity"]) for r in report.failed] == [
        ("suspense_share_USD", "warning")
    ]


def test_rerun_is_byte_identical_and_stays_inside_out_dir(tmp_path: Path) -> None:
    def snapshot() -> dict[str, bytes]:
        report = run(tmp_path, file_label="../../evil name.tsv")
        assert report.success
        return {
            str(p.relative_to(tmp_path)): p.read_bytes()
            for p in sorted(tmp_path.rglob("*"))
            if p.is_file()
        }

    first, second = snapshot(), snapshot()

    assert first == second
    assert not (tmp_path.parent / "evil name.tsv").exists()
    assert all(name.startswith("data_docs/") for name in first)
    html = b"".join(body for name, body in first.items() if name.endswith(".html"))
    assert b"great-expectations-web-assets" not in html  # no beacon to GX's bucket


@pytest.mark.parametrize("label", ["..", "", "a/b"])
def test_odd_labels_still_give_a_report(tmp_path: Path, label: str) -> None:
    report = run(tmp_path, file_label=label)

    assert report.success
    assert all(p.is_relative_to(tmp_path / "data_docs") for p in tmp_path.rglob("*.html"))
    assert len(validation_pages(report.docs_index)) == len(SUITES)


@pytest.mark.slow  # a fresh interpreter imports Great Expectations
def test_quiet_under_warnings_as_errors_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """pytest's own imports hide GX's import-time warnings; a fresh ``-W error`` run does not."""
    script = (
        "import sys, warnings\n"
        "from decimal import Decimal\n"
        "from pathlib import Path\n"
        "from tests.pipelines.test_expectations import GOOD, FINDINGS\n"
        "from pipelines.ingest.expectations import run_batch_expectations\n"
        "shown = warnings.showwarning\n"
        "r = run_batch_expectations(accepted=GOOD, findings=FINDINGS, file_label='f.tsv',\n"
        "    declared_totals={'USD': Decimal('2.35')}, out_dir=Path(sys.argv[1]))\n"
        "assert r.success, r.failed\n"
        "print('ok', sum(not x['success'] or x['exception'] is not None for x in r.results))\n"
        "print('warnings still shown:', warnings.showwarning is shown)\n"
        "import logging\n"
        "logging.captureWarnings(True)\n"
        "print('app can still capture them:', warnings.showwarning is not shown)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    # GX's import-time logging.captureWarnings(True) was undone: warnings are not swallowed.
    assert done.stdout.splitlines() == [
        "ok 0",
        "warnings still shown: True",
        "app can still capture them: True",
    ]
    assert done.stderr == ""  # no warnings, no progress bars


def test_a_file_with_rejected_lines_does_not_succeed_and_docs_open_offline(tmp_path: Path) -> None:
    """Rejected lines fail the batch: the reconciliation counts them, and each is a row-level
    result in the same Data Docs (its reason an unexpected value, with a count). No page or
    stylesheet loads anything from another host (GX links CDN scripts, styles and a logo)."""
    report = run(tmp_path, findings=REJECTED)

    assert not report.success
    assert sorted(failed(report)) == [
        ("reconciliation", "expect_column_max_to_be_between", "rejected_lines"),
        ("rejected_lines", "expect_column_values_to_be_in_set", "outcome"),
    ]
    observed = {r["column"]: r["observed_value"] for r in report.failed}
    assert observed["rejected_lines"] == 1
    assert observed["outcome"]["unexpected"] == ["rejected: amount:missing"]
    page = text_of(validation_pages(report.docs_index)["rejected_lines"])
    assert "Failed" in page and "rejected: amount:missing" in page
    assert "Status: Failed" in text_of(validation_pages(report.docs_index)["reconciliation"])
    # assets only: a plain link (GX's home page) loads nothing when the page opens
    remote = re.compile(
        r"""src=["'](?:https?:)?//|<link[^>]*href=["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//"""
    )
    docs = report.docs_index.parent
    for path in [*docs.rglob("*.html"), *docs.rglob("*.css")]:
        assert not remote.search(path.read_text(encoding="utf-8")), path
