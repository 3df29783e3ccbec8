"""What every command is given: the configuration, and sessions on the database.

The database is opened, and its schema brought up to date, the first time a command
asks for sessions: `config check` and `templates check` never touch it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbot.config import Config

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class Context:
    config: Config
    _sessions: sessionmaker[Session] | None = field(default=None, repr=False)

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            from mailbot import db

            engine = db.make_engine(self.config.database.url)
            db.upgrade(engine)
            self._sessions = db.session_factory(engine)
        return self._sessions
