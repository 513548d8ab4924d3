"""The store: SQLAlchemy models, migrations and the services on them.

Importing any module of the package registers every table on the one metadata: the tables
defined beside ``models`` (runs, deliveries, statements) are imported here, so that
relationships named by string always resolve and migrations see the whole schema.
"""

from schemas.store import deliveries as _deliveries  # noqa: F401
from schemas.store import runs as _runs  # noqa: F401
from schemas.store import statements as _statements  # noqa: F401
