"""``python -m cli`` = the ``tunemantra`` command."""

from cli.main import app

app()
