"""`mailbot run` (the daemon, or one pass) and `mailbot status` (health)."""

from __future__ import annotations

import click

from mailbot.cli.context import Context, pass_context


@click.command("run")
@click.option("--once", is_flag=True, help="process the inbox once and exit")
@pass_context
def run(context: Context, once: bool) -> int:
    """poll the mailbox (as a daemon, or --once)"""
    from mailbot.service.daemon import run_daemon, run_once

    start = run_once if once else run_daemon
    return start(context.config, context.sessions)


@click.command("status")
@pass_context
def status(context: Context) -> int:
    """health: polls, errors, queues, concerns by time left"""
    from mailbot.service import health

    report = health.status(context.config, context.sessions)
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"UNHEALTHY: {problem}")
    print("status: healthy" if report.healthy else "status: unhealthy")
    return 0 if report.healthy else 1


COMMANDS = (run, status)
