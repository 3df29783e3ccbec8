"""`mailbot templates`: every template checked against its policy, one rendered as a
family (or the safety team) would get it, and the live set (with the versions approved
in the console) exported to a directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mailbot.cli.context import Context, pass_context
from mailbot.config import Config


@click.group("templates")
def templates_group() -> None:
    """reply templates admins edit"""


@templates_group.command("check")
@click.option("--live", is_flag=True,
              help="check the versions approved in the console too (opens the database)")
@pass_context
def check(context: Context, live: bool) -> int:
    """check every template against its policy"""
    if not live:
        return templates_check(context.config)
    from mailbot.replies import versions

    with context.sessions() as session:
        return templates_check(context.config, versions.live(session))


@templates_group.command("preview")
@click.argument("name")
@click.option("--concern", help="our reference, SC-2026-00042 (default: sample)")
@pass_context
def preview(context: Context, name: str, concern: str | None) -> int:
    """render a template"""
    return _preview(context, name, concern)


@templates_group.command("export")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="the directory to write the live set to (made if missing)")
@pass_context
def export(context: Context, output: Path) -> int:
    """write the live wording of every template to a directory (for backup; it can
    serve as [replies] template_override_dir)"""
    from mailbot.replies import versions

    with context.sessions() as session:
        written = versions.export(session, output, context.config.replies.override_dir)
        numbers = versions.live_numbers(session)
    stored = sum(1 for number in numbers.values() if number)
    print(f"{len(written)} files written to {output} ({stored} template(s) live from "
          "versions saved in the console, the rest from their files; VERSIONS.txt says "
          "which)")
    return 0


COMMANDS = (templates_group,)


def templates_check(config: Config, live: Any = None) -> int:
    from mailbot.replies.policy import check_templates

    problems = check_templates(config.replies.override_dir, live)
    for problem in problems:
        print(f"mailbot: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("templates OK")
    return 0


def _preview(context: Context, name: str, concern: str | None) -> int:
    from sqlalchemy import select

    from mailbot.db.models import Contact
    from mailbot.replies import consent, drafts, policy

    config = context.config
    template_context = None
    if concern:
        with context.sessions() as session:
            contact = session.execute(
                select(Contact).where(Contact.reference == concern)
            ).scalar_one_or_none()
            if contact is None:
                raise drafts.DraftError(f"no concern {concern}")
            state = consent.for_contact(session, contact)
            template_context = drafts.template_context(contact, config, state.scope)
    rendered = policy.preview(name, template_context, override_dir=config.replies.override_dir)
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    return 0
