"""The `mailbot` command line: stable verbs that scripts, systemd and staff rely on.

One module per command group: service (run, status), messages, reports (export,
report), consent, drafts, concerns, templates, admin (config, db, retention). Each adds
its parsers and runs its verbs with a `Context` (the configuration, and sessions on
the database opened on first use).

Every failure a person can fix (bad config, unreachable mailbox, refused login, database
down, a refused staff request) ends as one clear line on stderr and a non-zero exit
code, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mailbot import __version__
from mailbot import config as config_module
from mailbot.cli import admin, concerns, consent, drafts, messages, reports, service, templates
from mailbot.cli.context import Context
from mailbot.errors import DatabaseError, MailbotError
from mailbot.logs import setup as setup_logging

GROUPS = (service, messages, reports, consent, drafts, templates, concerns, admin)
_GROUP_OF = {verb: group for group in GROUPS for verb in group.COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="Watches the safer custody functional mailbox and keeps its log.",
    )
    parser.add_argument("--config", help="TOML configuration file (default: $MAILBOT_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import OperationalError

    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        context = Context(config_module.load(args.config))
        return _GROUP_OF[args.verb].dispatch(context, args)
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return exc.exit_code
    except OperationalError as exc:
        print(f"mailbot: database error: {exc.orig}", file=sys.stderr)
        return DatabaseError.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
