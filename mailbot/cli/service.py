"""`mailbot run` (the daemon, or one pass) and `mailbot status` (health)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mailbot.cli.context import Context, pass_context


@click.command("run")
@click.option("--once", is_flag=True, help="process the inbox once and exit")
@pass_context
def run(context: Context, once: bool) -> int:
    """poll the mailbox (as a daemon, or --once)"""
    from mailbot.service.daemon import run_daemon, run_once

    if once:
        return run_once(context.config, context.sessions, judge=_delivered(context))
    return run_daemon(context.config, context.sessions)


def _delivered(context: Context) -> Callable[[Any], int]:
    """A pass whose emails could not go because the mail server was unreachable fails
    (exit 3, as an unreachable mailbox does), with the reason in one line: a script or
    timer running `run --once` must not take "queued" for "sent"."""

    def judge(summary: Any) -> int:
        from sqlalchemy import func, select

        from mailbot.db.models import OutboxEmail
        from mailbot.errors import MailboxError
        from mailbot.replies.outbox import Status

        sending = summary.sending
        if sending is None or not sending.connection_error:
            return 0
        with context.sessions() as session:
            waiting = session.scalar(
                select(func.count()).select_from(OutboxEmail)
                .where(OutboxEmail.status.in_((Status.QUEUED, Status.SENDING)))
            )
        reason = " ".join(sending.connection_error.split())[:300]
        click.echo(f"mailbot: could not send {waiting} queued email(s): the mail server "
                   f"{context.config.smtp.host}:{context.config.smtp.port} is unreachable "
                   f"({reason}); they stay queued for the next pass", err=True)
        return MailboxError.exit_code

    return judge


@click.command("status")
@pass_context
def status(context: Context) -> int:
    """health: polls, errors, queues, concerns by time left (exit 3: a sign-in failed)"""
    from mailbot.service import health

    report = health.status(context.config, context.sessions)
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"UNHEALTHY: {problem}")
    print("status: healthy" if report.healthy else "status: unhealthy")
    return report.exit_code


COMMANDS = (run, status)
