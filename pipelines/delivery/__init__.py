"""DDEX delivery to DSPs: plan, package, upload, acknowledgements."""
