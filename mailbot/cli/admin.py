"""`mailbot config check`, `mailbot db upgrade` and `mailbot retention`: keeping the
installation itself in order."""

from __future__ import annotations

import sys

import click

from mailbot.cli.context import Context, pass_context


@click.group("config")
def config_group() -> None:
    """configuration"""


@config_group.command("check")
@pass_context
def config_check(context: Context) -> int:
    """validate the configuration file and exit"""
    return _config_check(context)


@click.group("db")
def db_group() -> None:
    """database schema"""


@db_group.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> int:
    """create or upgrade the schema"""
    context.sessions  # noqa: B018  (opening them upgrades the schema)
    print("database schema is up to date")
    return 0


@click.command("retention")
@click.option("--dry-run", is_flag=True, help="only say what would go")
@pass_context
def retention_command(context: Context, dry_run: bool) -> int:
    """anonymise personal data past retention"""
    return _retention(context, dry_run=dry_run)


COMMANDS = (config_group, db_group, retention_command)


def _config_check(context: Context) -> int:
    """What the service will need, checked as the user running it: the file parsed, every
    secret readable, every template directory readable, every template within policy."""
    import os

    from mailbot.errors import ConfigError
    from mailbot.mailbox import signin
    from mailbot.replies.policy import check_templates
    from mailbot.replies.render import template_dirs

    config = context.config
    signin.read_secrets(config)  # passwords or OAuth2 secrets: a ConfigError names the key
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
