"""Pure royalty computation over Polars LazyFrames / DuckDB relations (no I/O, no Airflow)."""
