"""The database: the communications log's tables (`models`), the engine, sessions and
schema upgrades (`sessions`), and the Alembic migrations (`migrations/`)."""

from mailbot.db.sessions import (
    SCHEMA_HEAD,
    alembic_config,
    lock_for_writing,
    make_engine,
    session_factory,
    session_scope,
    upgrade,
)

__all__ = [
    "SCHEMA_HEAD",
    "alembic_config",
    "lock_for_writing",
    "make_engine",
    "session_factory",
    "session_scope",
    "upgrade",
]
