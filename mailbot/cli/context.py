"""What every command is given (click's `ctx.obj`): the configuration, and sessions on
the database.

The configuration is read the first time a command asks for it, so `--help` works with
none; the database is opened, and its schema brought up to date, the first time a
command asks for sessions: `config check` and `templates check` never touch it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from mailbot import config as config_module
from mailbot.config import Config

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class Context:
    config_path: str | None = None
    _config: Config | None = field(default=None, repr=False)
    _sessions: sessionmaker[Session] | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The configuration from `--config` (else `$MAILBOT_CONFIG`); a `ConfigError`
        if it is missing or invalid."""
        if self._config is None:
            self._config = config_module.load(self.config_path)
        return self._config

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            from mailbot import db

            engine = db.make_engine(self.config.database.url,
                                    self.config.database.lock_timeout_seconds)
            db.upgrade(engine)
            self._sessions = db.session_factory(engine)
        return self._sessions


pass_context = click.make_pass_decorator(Context)


def by_option(help: str = "the member of staff doing it") -> Callable[[Any], Any]:
    """`--by NAME`, for scripts: what the verb records under NAME in the audit trail is
    marked as typed on the command line (mailbot/casework/audit.py), until it ends."""
    return click.option("--by", required=True, callback=_typed_by,
                        help=f"{help} (recorded as typed on the command line)")


def _typed_by(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from mailbot.casework import audit

    token = audit.typed_by(value)
    ctx.call_on_close(lambda: audit.forget_typed(token))
    return value
