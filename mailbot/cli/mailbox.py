"""`mailbot mailbox check`: the first command an administrator runs, signing in to the
mailbox and the mail server as configured and listing the folders mailbot will use."""

from __future__ import annotations

import click

from mailbot.cli.context import Context, pass_context


@click.group("mailbox")
def mailbox_group() -> None:
    """the mailbox and the mail server"""


@mailbox_group.command("check")
@pass_context
def check(context: Context) -> int:
    """sign in to IMAP and SMTP and list the folders; sends nothing"""
    from mailbot.service import health

    report = health.mailbox_check(context.config)
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("mailbox check: ready" if report.healthy
          else f"mailbox check: {len(report.problems)} problem(s)")
    return 0 if report.healthy else 1


COMMANDS = (mailbox_group,)
