"""`mailbot config check`, `mailbot db upgrade` and `mailbot retention`: keeping the
installation itself in order."""

from __future__ import annotations

import argparse
import sys

from mailbot.cli.context import Context

COMMANDS = ("config", "db", "retention")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    config_cmd = verbs.add_parser("config", help="configuration")
    config_verbs = config_cmd.add_subparsers(dest="config_verb", required=True)
    config_verbs.add_parser("check", help="validate the configuration file and exit")

    database = verbs.add_parser("db", help="database schema")
    database_verbs = database.add_subparsers(dest="db_verb", required=True)
    database_verbs.add_parser("upgrade", help="create or upgrade the schema")

    retention = verbs.add_parser("retention", help="anonymise personal data past retention")
    retention.add_argument("--dry-run", action="store_true", help="only say what would go")


def dispatch(context: Context, args: argparse.Namespace) -> int:
    if args.verb == "config":
        return _config_check(context)
    if args.verb == "db":
        context.sessions  # noqa: B018  (opening them upgrades the schema)
        print("database schema is up to date")
        return 0
    return _retention(context, dry_run=args.dry_run)


def _config_check(context: Context) -> int:
    """What the service will need, checked as the user running it: the file parsed, every
    secret readable, every template directory readable, every template within policy."""
    import os

    from mailbot.errors import ConfigError
    from mailbot.replies.policy import check_templates
    from mailbot.replies.render import template_dirs

    config = context.config
    config.mailbox.password()  # raises ConfigError naming the section and file
    config.smtp.password()
    for directory in template_dirs(config.replies.override_dir):
        if not os.access(directory, os.R_OK | os.X_OK):
            raise ConfigError(f"template directory {directory} is not readable")
        for path in directory.rglob("*"):
            if path.is_file() and not os.access(path, os.R_OK):
                raise ConfigError(f"template {path} is not readable")
    problems = check_templates(config.replies.override_dir)
    if problems:
        for problem in problems:
            print(f"mailbot: {problem}", file=sys.stderr)
        raise ConfigError(f"{len(problems)} template problem(s): see `mailbot templates check`")
    print(f"configuration OK: {config.source}")
    return 0


def _retention(context: Context, *, dry_run: bool) -> int:
    from mailbot.casework import retention

    with context.sessions() as session:
        if dry_run:
            print(retention.plan(session, context.config).describe())
            print("dry run: nothing changed")
            return 0
        done = retention.apply(session, context.config)
        session.commit()
    print(done.describe())
    return 0
