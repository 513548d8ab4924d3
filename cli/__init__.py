"""The ``tunemantra`` command."""
