"""The `mailbot` command line: stable verbs that scripts, systemd and staff rely on.

A click group with one module per area: service (run, status), messages, outbox, reports
(export, report), consent, drafts, concerns, templates, admin (config, db, retention),
mailbox (check), users (the web console's accounts) and web (the console).
Each module's `COMMANDS` are added to the top-level group, and every verb is given a
`Context` (the configuration, and sessions on the database opened on first use) as
click's `ctx.obj`.

Every failure a person can fix (bad config, unreachable mailbox, refused login, database
down, a refused staff request, a mistyped command) ends as one clear message on stderr
and a non-zero exit code, never a traceback: 0 done, 1 unhealthy or template problems,
2 bad configuration or usage, 3 mailbox unreachable or login refused, 4 database
unavailable, 5 refused.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Sequence
from typing import IO, Any

import click

from mailbot import __version__
from mailbot.cli import (
    admin,
    concerns,
    consent,
    drafts,
    mailbox,
    messages,
    outbox,
    reports,
    service,
    templates,
    users,
)
from mailbot.cli.context import Context
from mailbot.errors import DatabaseError, MailbotError
from mailbot.logs import setup as setup_logging

AREAS = (service, messages, outbox, reports, consent, drafts, templates, concerns, admin,
         mailbox, users)


class Failure(click.ClickException):
    """A failure a person can fix, as one line on stderr with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"mailbot: {self.message}", file=file, err=file is None)


class MailbotGroup(click.Group):
    """The top-level group: a verb's failure becomes a `Failure` with its exit code, and
    the exit code a verb returns is the process's, under `main` and `CliRunner` alike."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import OperationalError

        try:
            code = super().invoke(ctx)
        except MailbotError as exc:
            raise Failure(str(exc), exc.exit_code) from exc
        except OperationalError as exc:
            raise Failure(f"database error: {exc.orig}", DatabaseError.exit_code) from exc
        if isinstance(code, int) and code:
            ctx.exit(code)
        return code


@click.group(cls=MailbotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="MAILBOT_CONFIG", metavar="PATH",
              help="TOML configuration file (default: $MAILBOT_CONFIG)")
@click.option("-v", "--verbose", is_flag=True, help="log at DEBUG")
@click.version_option(__version__, prog_name="mailbot", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Watches the safer custody functional mailbox and keeps its log."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    ctx.obj = Context(config_path)


for _area in AREAS:
    for _command in _area.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb and return its exit code (the console script's entry point): usage
    errors and bad configuration 2, the others as the module docstring says. The verb
    runs in a context of its own, so that what it sets (the --by name the audit trail
    marks as typed) ends with it, also when a test runs several in one process."""
    return contextvars.copy_context().run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="mailbot",
                        standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
