"""Revenue ingestion: drops, one file's ingestion, expectations, suspense."""
