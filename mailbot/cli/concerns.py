"""`mailbot concerns`: one concern's record, and what staff did for it (actions,
a response made outside mailbot, the closing)."""

from __future__ import annotations

import argparse
import json

from mailbot.cli.context import Context

COMMANDS = ("concerns",)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    concerns_cmd = verbs.add_parser("concerns", help="safer custody concerns")
    concerns_verbs = concerns_cmd.add_subparsers(dest="concerns_verb", required=True)
    concern_show = concerns_verbs.add_parser("show", help="one concern's full record")
    concern_show.add_argument("reference")
    respond = concerns_verbs.add_parser(
        "respond", help="record a response made outside mailbot (e.g. by phone)"
    )
    respond.add_argument("reference")
    respond.add_argument("--by", required=True)
    respond.add_argument("--method", required=True, choices=("phone", "email", "letter",
                                                              "in_person"))
    respond.add_argument("--note", default="")
    action = concerns_verbs.add_parser("action", help="record what was done for a concern")
    action.add_argument("reference")
    action.add_argument("--kind", required=True, help="welfare_check, referral, acct_opened...")
    action.add_argument("--by", required=True)
    action.add_argument("--note", default="")
    action.add_argument("--outcome", default="")
    action.add_argument("--department", help="for referrals: healthcare, mental_health...")
    action.add_argument("--when", help="when it happened (ISO 8601 with zone); default now")
    close = concerns_verbs.add_parser("close", help="close a concern (only ever by staff)")
    close.add_argument("reference")
    close.add_argument("--by", required=True)
    close.add_argument("--outcome", required=True)


def dispatch(context: Context, args: argparse.Namespace) -> int:
    from datetime import datetime

    from mailbot.casework import actions
    from mailbot.casework.deadlines import record_phone_response
    from mailbot.db.models import utcnow
    from mailbot.reports.export import entry

    verb = args.concerns_verb
    with context.sessions() as session:
        contact = actions.find(session, args.reference)
        if verb == "show":
            record = entry(contact, context.config, utcnow())
            print(json.dumps(record, indent=2, ensure_ascii=False))
            return 0
        if verb == "respond":
            if not args.by.strip():
                raise actions.CaseworkError("--by must name the member of staff")
            record_phone_response(session, contact, by=args.by, method=args.method,
                                  note=args.note)
            message = f"response by {args.method} recorded for {args.reference}"
        elif verb == "action":
            try:
                when = datetime.fromisoformat(args.when) if args.when else None
            except ValueError as exc:
                raise actions.CaseworkError(f"--when: {exc}") from exc
            actions.record_action(session, contact, kind=args.kind, by=args.by,
                                  note=args.note, outcome=args.outcome,
                                  department=args.department, when=when)
            message = f"{args.kind} recorded for {args.reference}"
        else:
            actions.close(session, contact, by=args.by, outcome=args.outcome)
            message = f"{args.reference} closed"
        session.commit()
    print(message)
    return 0
