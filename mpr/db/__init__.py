"""The results database: models, sessions, migrations, result writing and queries."""

from mpr.db.session import database_url, get_engine, session_scope

__all__ = ["database_url", "get_engine", "session_scope"]
