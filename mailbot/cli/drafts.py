"""`mailbot drafts`: acknowledgements waiting for a member of staff, and their approval,
rejection or redrafting. Approval sends at once (or queues, if SMTP is down)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mailbot.cli.context import Context

COMMANDS = ("drafts",)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    drafts_cmd = verbs.add_parser("drafts", help="acknowledgements waiting for approval")
    drafts_verbs = drafts_cmd.add_subparsers(dest="drafts_verb", required=True)
    drafts_list = drafts_verbs.add_parser("list", help="open drafts")
    drafts_list.add_argument("--json", action="store_true")
    drafts_list.add_argument("--all", action="store_true", help="decided ones too")
    drafts_show = drafts_verbs.add_parser("show", help="one draft in full")
    drafts_show.add_argument("id", type=int)
    approve = drafts_verbs.add_parser("approve", help="approve and send a draft")
    approve.add_argument("id", type=int)
    approve.add_argument("--by", required=True)
    approve.add_argument("--edit", type=Path, help="send this file's text instead")
    reject = drafts_verbs.add_parser("reject", help="reject a draft")
    reject.add_argument("id", type=int)
    reject.add_argument("--by", required=True)
    reject.add_argument("--reason", required=True)
    redraft = drafts_verbs.add_parser("redraft", help="rewrite a draft for today's consent")
    redraft.add_argument("id", type=int)
    redraft.add_argument("--by", required=True)


def dispatch(context: Context, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from mailbot.db.models import Draft
    from mailbot.mailbox.fetch import Mailbox
    from mailbot.replies import drafts
    from mailbot.replies.outbox import send_due

    config, sessions = context.config, context.sessions
    verb = args.drafts_verb
    with sessions() as session:
        if verb == "list":
            query = select(Draft).order_by(Draft.id)
            if not args.all:
                query = query.where(Draft.status == drafts.Status.DRAFT)
            rows = [draft_row(d) for d in session.execute(query).scalars()]
            if args.json:
                print(json.dumps(rows, indent=2, ensure_ascii=False))
                return 0
            print(f"{'id':>5}  {'reference':14} {'template':15} {'status':14} {'urgency':18} to")
            for row in rows:
                print(f"{row['id']:>5}  {row['reference']:14} {row['template']:15} "
                      f"{row['status']:14} {row['urgency']:18} {row['to'] or '-'}")
                for sentence in row["could_not_account_for"]:
                    print(f"{'':7}mailbot could not account for: \"{sentence}\"")
            return 0
        if verb == "show":
            draft = session.get(Draft, args.id)
            if draft is None:
                raise drafts.DraftError(f"no draft {args.id}")
            row = draft_row(draft, full=True)
            text = row.pop("text")
            for key, value in row.items():
                print(f"{key}: {value}")
            print()
            print(text)
            return 0
        if verb == "approve":
            edited = args.edit.read_text(encoding="utf-8") if args.edit else None
            approval = drafts.approve(session, config, args.id, by=args.by, edited_text=edited)
            session.commit()
            reference = approval.draft.contact.reference
        elif verb == "reject":
            drafts.reject(session, args.id, by=args.by, reason=args.reason)
            session.commit()
            print(f"draft {args.id} rejected")
            return 0
        else:
            new = drafts.redraft(session, config, args.id, by=args.by)
            session.commit()
            print(f"draft {args.id} superseded by draft {new.id} ({new.template})")
            return 0
    summary = send_due(config, sessions, lambda: Mailbox.connect(config.mailbox))
    with sessions() as session:
        drafts.settle_sent(session)
        session.commit()
    state = "sent" if summary.sent else "queued (will be retried)"
    print(f"draft {args.id} approved for {reference}: {state}")
    return 0


def draft_row(draft: Any, full: bool = False) -> dict[str, Any]:
    from mailbot.replies.drafts import unfilled_markers

    contact = draft.contact
    row = {
        "id": draft.id,
        "reference": contact.reference,
        "template": draft.template,
        "consent": draft.consent_scope,
        "status": draft.status,
        "to": draft.recipient,
        "subject": draft.subject,
        "urgency": contact.urgency,
        "received_at": contact.received_at.isoformat(),
        "created_at": draft.created_at.isoformat(),
        "decided_by": draft.decided_by,
        "could_not_account_for": list(contact.unaccounted),
    }
    if full:
        row["text"] = draft.body_text
        row["unfilled"] = unfilled_markers(draft.body_text)
    return row
