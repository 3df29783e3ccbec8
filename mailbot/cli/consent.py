"""`mailbot consent`: the consent register, as a named member of staff records it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbot.cli.context import Context

COMMANDS = ("consent",)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    consent_cmd = verbs.add_parser("consent", help="the consent register")
    consent_verbs = consent_cmd.add_subparsers(dest="consent_verb", required=True)
    for name, text in (
        ("grant", "record what the prisoner consented to share with a contact"),
        ("withdraw", "withdraw consent (wins from this moment)"),
        ("restrict", "record a restricted contact (restraining order, ...)"),
    ):
        verb = consent_verbs.add_parser(name, help=text)
        verb.add_argument("--prisoner", required=True, help="prisoner number, A1234BC")
        verb.add_argument(
            "--contact", required=True, help="email address, or 'Name|phone' without one"
        )
        verb.add_argument("--by", required=True, help="member of staff recording it")
        verb.add_argument("--note", default="")
        if name == "grant":
            verb.add_argument("--scope", required=True, choices=("none", "wellbeing", "full"))
    consent_list = consent_verbs.add_parser("list", help="list the register")
    consent_list.add_argument("--prisoner")
    consent_list.add_argument("--json", action="store_true")


def dispatch(context: Context, args: argparse.Namespace) -> int:
    from mailbot.replies import consent

    with context.sessions() as session:
        if args.consent_verb == "list":
            rows = [_consent_row(r) for r in consent.listing(session, args.prisoner)]
            if args.json:
                print(json.dumps(rows, indent=2))
                return 0
            for row in rows:
                withdrawn = row["withdrawn_at"]
                state = f"withdrawn {withdrawn[:16]}" if withdrawn else "in force"
                print(f"{row['id']:>5}  {row['prisoner']}  {row['contact']:40} {row['scope']:10} "
                      f"by {row['recorded_by']} {row['recorded_at'][:16]}  {state}")
            return 0
        common = {"prisoner": args.prisoner, "contact": args.contact, "by": args.by,
                  "note": args.note}
        if args.consent_verb == "grant":
            consent.grant(session, scope=args.scope, **common)
            message = f"consent '{args.scope}' recorded"
        elif args.consent_verb == "restrict":
            consent.restrict(session, **common)
            message = "restricted contact recorded"
        else:
            count = consent.withdraw(session, **common)
            message = f"withdrawn ({count} record(s))"
        session.commit()
    print(message)
    return 0


def _consent_row(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "prisoner": record.prisoner_number,
        "contact": record.contact_key,
        "scope": record.scope,
        "recorded_by": record.recorded_by,
        "recorded_at": record.recorded_at.isoformat(),
        "note": record.note,
        "withdrawn_at": record.withdrawn_at.isoformat() if record.withdrawn_at else None,
        "withdrawn_by": record.withdrawn_by,
    }
