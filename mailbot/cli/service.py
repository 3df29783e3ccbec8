"""`mailbot run` (the daemon, or one pass) and `mailbot status` (health)."""

from __future__ import annotations

import argparse

from mailbot.cli.context import Context

COMMANDS = ("run", "status")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    run = verbs.add_parser("run", help="poll the mailbox (as a daemon, or --once)")
    run.add_argument("--once", action="store_true", help="process the inbox once and exit")
    verbs.add_parser("status", help="health: polls, errors, queues, concerns by time left")


def dispatch(context: Context, args: argparse.Namespace) -> int:
    if args.verb == "run":
        from mailbot.service.daemon import run_daemon, run_once

        start = run_once if args.once else run_daemon
        return start(context.config, context.sessions)
    from mailbot.service.health import status

    report = status(context.config, context.sessions)
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"UNHEALTHY: {problem}")
    print("status: healthy" if report.healthy else "status: unhealthy")
    return 0 if report.healthy else 1
