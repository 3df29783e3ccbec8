"""The staff console over a fresh SQLite log, for the web tests that talk HTTP to it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from mailbot import config as config_module
from mailbot import db
from mailbot.web import accounts
from mailbot.web.app import create_app

PASSWORD = "correct horse battery"
STAFF = (("Officer Smith", "officer"), ("Manager Jones", "manager"), ("Admin Patel", "admin"))


def console_config(tmp_path: Path, **tables: dict[str, Any]) -> config_module.Config:
    """A configuration whose mailbox and mail server are never contacted."""
    return config_module.from_dict({
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {"host": "127.0.0.1", "port": 1, "username": "u", "password_env": "UNUSED"},
        "smtp": {"host": "127.0.0.1", "port": 1, "from_address": "sc@prison.example"},
        "state": {"directory": str(tmp_path)},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"},
        **tables,
    })


@contextmanager
def console_app(tmp_path: Path, *, staff: tuple[tuple[str, str], ...] = STAFF,
                seed: bool = False, **tables: dict[str, Any]) -> Iterator[Starlette]:
    """The console app with `staff` signed up (all with PASSWORD) and, with `seed`, the
    seeded log of tests/seed.py; `application.state.sessions` opens the database."""
    config = console_config(tmp_path, **tables)
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    with sessions() as session:
        for name, role in staff:
            accounts.add(session, name, role, PASSWORD, by="test")
        if seed:
            from tests.seed import seed_log

            seed_log(session, config)
        session.commit()
    application = create_app(config, sessions, session_secret="s" * 40)
    application.state.sessions = sessions
    try:
        yield application
    finally:
        engine.dispose()


def csrf_token(page_html: str) -> str:
    """The CSRF token a console form carries."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    if match is None:
        raise AssertionError("the page has no form with a CSRF token")
    return match.group(1)
