"""Royalty runs: plan, earn, record, approve, lock, verify; the audit ledger."""
