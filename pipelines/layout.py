"""The data directory, described once: every path under ``TUNEMANTRA_DATA_DIR`` is a method of
``DataDir``; nothing else joins folder names onto the data directory.

Light on purpose (standard library only), so DAG files may import it at parse time.

::

    tunemantra.db                                     the embedded store (SQLite) if no URL is set
    raw/org=<id>/<sha[:2]>/<sha><suffix>              delivered report files, by content, read-only
    staging/org=<id>-file=<file id>/                  one ingestion's parts before promotion
    lake/<table>/org=<id>/period=<p>/source=<s>/file=<file id>/part-n.parquet
    reports/ingest/org=<id>/file=<file id>/           one file's findings and Data Docs
    quarantine/org=<id>/<sha>.json                    why a file was refused
    state/drops/org=<id>/                             what each drop has already handed over
    runs/org=<id>/period=<label>/v<n>/                a royalty run's folder (manifest, frames)
    audit/org=<id>/ledger.jsonl                       the hash-chained audit ledger
    statements/org=<id>/period=<p>/v<n>/              rendered statements of a run
    outbound/org=<slug>/                              the default statements publishing target
    assets/org=<id>/, deliveries/org=<id>/            DDEX release assets and packaged deliveries
    dsp/<name>/                                       the demo's local DSP drop folders
    drops/<name>/                                     the demo's local inbound drop
    warehouse/                                        the analysts' DuckDB file and reference data

Object storage (``s3://bucket/prefix``) is the next step: ``root`` is then a path-like object
of the same interface (``/``, ``open``, ``exists``, ``glob``), and callers do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    # --- the store -----------------------------------------------------------------------------
    def sqlite_file(self) -> Path:
        return self.root / "tunemantra.db"

    # --- ingestion -----------------------------------------------------------------------------
    def raw(self, org_id: int, sha: str, suffix: str) -> Path:
        """Where a delivered file is kept, by content."""
        return self.root / "raw" / f"org={org_id}" / sha[:2] / f"{sha}{suffix}"

    def raw_root(self) -> Path:
        return self.root / "raw"

    def staging_root(self) -> Path:
        return self.root / "staging"

    def staging(self, org_id: int, file_id: int) -> Path:
        return self.staging_root() / f"org={org_id}-file={file_id}"

    def lake_root(self) -> Path:
        return self.root / "lake"

    def lake_table(self, table: str, org_id: int | None = None) -> Path:
        folder = self.lake_root() / table
        return folder if org_id is None else folder / f"org={org_id}"

    def partition(self, table: str, org_id: int, period: str, source: str, file_id: int) -> Path:
        """The folder holding one ingested file's parts of one (table, org, period, source)."""
        return (
            self.lake_table(table, org_id)
            / f"period={period}"
            / f"source={source}"
            / f"file={file_id}"
        )

    def ingest_reports_root(self) -> Path:
        return self.root / "reports" / "ingest"

    def ingest_report(self, org_id: int, file_id: int) -> Path:
        """The ingestion report folder of one file (findings, Data Docs)."""
        return self.ingest_reports_root() / f"org={org_id}" / f"file={file_id}"

    def quarantine_root(self) -> Path:
        return self.root / "quarantine"

    def quarantine(self, org_id: int, sha: str) -> Path:
        """Why one delivered file (by content) was refused."""
        return self.quarantine_root() / f"org={org_id}" / f"{sha}.json"

    def quarantine_findings(self, org_id: int, sha: str) -> Path:
        """Every finding of a file quarantined for its rejected lines (file, row, field,
        code, reason): nothing of it is lost."""
        return self.quarantine_root() / f"org={org_id}" / f"{sha}.findings.json"

    def drop_state_root(self) -> Path:
        return self.root / "state" / "drops"

    def drop_state(self, org_id: int) -> Path:
        """What each drop of the organisation has handed over (``<drop>.json``) and why it
        could not be listed (``<drop>.error.json``)."""
        return self.drop_state_root() / f"org={org_id}"

    def local_drop(self, name: str) -> Path:
        """A local inbound drop folder (the demo's stand-in for a distributor's SFTP)."""
        return self.root / "drops" / name

    # --- royalty runs and the audit ledger -----------------------------------------------------
    def runs_root(self) -> Path:
        return self.root / "runs"

    def runs(self, org_id: int) -> Path:
        return self.runs_root() / f"org={org_id}"

    def run_period(self, org_id: int, period_label: str) -> Path:
        """The folder of a period's runs (one ``v<n>`` folder per version)."""
        return self.runs(org_id) / f"period={period_label}"

    def audit_root(self) -> Path:
        return self.root / "audit"

    def audit_ledger(self, org_id: int) -> Path:
        return self.audit_root() / f"org={org_id}" / "ledger.jsonl"

    # --- statements ----------------------------------------------------------------------------
    def statements_root(self) -> Path:
        return self.root / "statements"

    def statements(self, org_id: int, period: str, version: int) -> Path:
        return self.statements_root() / f"org={org_id}" / f"period={period}" / f"v{version}"

    def outbound(self, org_slug: str) -> Path:
        """The default publishing target of an organisation's statements."""
        return self.root / "outbound" / f"org={org_slug}"

    # --- delivery ------------------------------------------------------------------------------
    def assets(self, org_id: int | None = None) -> Path:
        folder = self.root / "assets"
        return folder if org_id is None else folder / f"org={org_id}"

    def deliveries(self, org_id: int | None = None) -> Path:
        folder = self.root / "deliveries"
        return folder if org_id is None else folder / f"org={org_id}"

    def dsp(self, name: str) -> Path:
        """A DSP's local drop folder (the demo's and tests' stand-in for its SFTP server)."""
        return self.root / "dsp" / name

    # --- warehouse -----------------------------------------------------------------------------
    def warehouse_root(self) -> Path:
        return self.root / "warehouse"

    def warehouse_reference(self) -> Path:
        return self.warehouse_root() / "reference"

    def warehouse_file(self) -> Path:
        """The analysts' DuckDB file (swapped in whole by each build)."""
        return self.warehouse_root() / "tunemantra.duckdb"

    def warehouse_build(self, slot: str = "") -> Path:
        """Where a finished build waits to be swapped in (``slot``: one per kind of builder)."""
        return self.warehouse_root() / ".build" / slot / self.warehouse_file().name

    # --- an organisation's files ----------------------------------------------------------------
    def org_files(self, org_id: int) -> list[Path]:
        """The folders of one organisation's ingested files, drop state, runs, audit ledger
        and statements (``org=<id>``): what forgetting an organisation removes."""
        roots = [
            self.raw_root(),
            self.quarantine_root(),
            self.ingest_reports_root(),
            self.drop_state_root(),
            self.runs_root(),
            self.audit_root(),
            self.statements_root(),
            *sorted(self.lake_root().glob("*")),
        ]
        return [root / f"org={org_id}" for root in roots]

    # --- paths recorded in manifests -----------------------------------------------------------
    def relative(self, path: Path) -> str:
        """A path as manifests record it: relative to the data directory, with ``/``."""
        return path.relative_to(self.root).as_posix()

    def resolve(self, relative: str) -> Path:
        """The path a manifest's relative path names."""
        return self.root / relative
