"""The engine, sessions, and schema upgrades through Alembic (`migrations/` beside this)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision. A database already there is left alone without
# loading Alembic, a tenth of a second of every command. A test checks it is the head.
SCHEMA_HEAD = "0010"


def make_engine(url: str, lock_timeout_seconds: float = 10) -> Engine:
    """The engine for URL. LOCK_TIMEOUT_SECONDS is how long a write waits for SQLite's
    lock (held by another writer) before it fails: `[database] lock_timeout_seconds`."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        milliseconds = int(lock_timeout_seconds * 1000)

        def sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # WAL lets `mailbot status` and exports read while the daemon writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={milliseconds}")
            cursor.close()

        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration."""
    try:
        if _schema_revisions(engine) == [SCHEMA_HEAD]:
            return
        from alembic import command

        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot upgrade the database at {engine.url.render_as_string()}: "
            f"{exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}"
        ) from exc


def _schema_revisions(engine: Engine) -> list[str] | None:
    """What Alembic recorded of this database's schema; None if it recorded nothing."""
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, "alembic_version"):
            return None
        return list(connection.scalars(text("SELECT version_num FROM alembic_version")))


def lock_for_writing(session: Session) -> None:
    """Begin the session's transaction by taking the database's write lock, waiting for
    it if need be (SQLite's busy timeout). A SQLite transaction that reads before it
    writes fails at its first write if another writer committed meanwhile; one that
    starts with the lock cannot. PostgreSQL locks rows as they are written: nothing to do.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
