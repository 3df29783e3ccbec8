"""`mailbot templates`: every template checked against its policy, and one rendered as
a family (or the safety team) would get it."""

from __future__ import annotations

import argparse
import sys

from mailbot.cli.context import Context
from mailbot.config import Config

COMMANDS = ("templates",)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    templates_cmd = verbs.add_parser("templates", help="reply templates admins edit")
    templates_verbs = templates_cmd.add_subparsers(dest="templates_verb", required=True)
    templates_verbs.add_parser("check", help="check every template against its policy")
    preview = templates_verbs.add_parser("preview", help="render a template")
    preview.add_argument("name")
    preview.add_argument("--concern", help="our reference, SC-2026-00042 (default: sample)")


def dispatch(context: Context, args: argparse.Namespace) -> int:
    if args.templates_verb == "check":
        return templates_check(context.config)
    return _preview(context, args)


def templates_check(config: Config) -> int:
    from mailbot.replies.policy import check_templates

    problems = check_templates(config.replies.override_dir)
    for problem in problems:
        print(f"mailbot: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("templates OK")
    return 0


def _preview(context: Context, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from mailbot.db.models import Contact
    from mailbot.replies import consent, drafts
    from mailbot.replies.policy import preview

    config = context.config
    template_context = None
    if args.concern:
        with context.sessions() as session:
            contact = session.execute(
                select(Contact).where(Contact.reference == args.concern)
            ).scalar_one_or_none()
            if contact is None:
                raise drafts.DraftError(f"no concern {args.concern}")
            state = consent.for_contact(session, contact)
            template_context = drafts.template_context(contact, config, state.scope)
    rendered = preview(args.name, template_context, override_dir=config.replies.override_dir)
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    return 0
