"""``python -m pipelines`` = the ``tunemantra`` command."""

from pipelines.cli import app

app()
