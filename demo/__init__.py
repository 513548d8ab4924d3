"""The sample label ``demo``: catalogue, reports, runs, statements, deliveries."""
