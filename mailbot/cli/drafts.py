"""`mailbot drafts`: acknowledgements waiting for a member of staff, and their approval,
rejection or redrafting. Approval sends at once, or queues when the mail server cannot
be reached now (it is sent when the server answers); until SMTP has accepted it the
draft, and its concern, show "approved, not yet sent"."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from mailbot.cli.context import Context, by_option, pass_context

log = logging.getLogger(__name__)


@click.group("drafts")
def drafts_group() -> None:
    """acknowledgements waiting for approval"""


@drafts_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "show_all", is_flag=True, help="decided ones too")
@pass_context
def listing(context: Context, as_json: bool, show_all: bool) -> int:
    """open drafts, and approved ones not yet sent"""
    from sqlalchemy import select

    from mailbot.db.models import Draft
    from mailbot.replies import drafts

    with context.sessions() as session:
        if show_all:
            found = session.execute(select(Draft).order_by(Draft.id)).scalars()
        else:
            found = drafts.pending(session)
        rows = [draft_row(d) for d in found]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(f"{'id':>5}  {'reference':14} {'template':15} {'status':22} {'urgency':18} to")
    for row in rows:
        print(f"{row['id']:>5}  {row['reference']:14} {row['template']:15} "
              f"{row['state']:22} {row['urgency']:18} {row['to'] or '-'}")
        for sentence in row["could_not_account_for"]:
            print(f"{'':7}mailbot could not account for: \"{sentence}\"")
    return 0


@drafts_group.command("show")
@click.argument("draft_id", metavar="ID", type=int)
@pass_context
def show(context: Context, draft_id: int) -> int:
    """one draft in full"""
    from mailbot.db.models import Draft
    from mailbot.replies import drafts

    with context.sessions() as session:
        draft = session.get(Draft, draft_id)
        if draft is None:
            raise drafts.DraftError(f"no draft {draft_id}")
        row = draft_row(draft, full=True)
    text = row.pop("text")
    for key, value in row.items():
        print(f"{key}: {value}")
    print()
    print(text)
    return 0


@drafts_group.command("approve")
@click.argument("draft_id", metavar="ID", type=int)
@by_option()
@click.option("--edit", type=click.Path(path_type=Path), help="send this file's text instead")
@pass_context
def approve(context: Context, draft_id: int, by: str, edit: Path | None) -> int:
    """approve and send a draft (queued if the mail server cannot be reached now)"""
    from mailbot.mailbox.fetch import Mailbox
    from mailbot.replies import drafts
    from mailbot.replies.outbox import Status

    config, sessions = context.config, context.sessions
    with sessions() as session:
        edited = edit.read_text(encoding="utf-8") if edit else None
        approval = drafts.approve(session, config, draft_id, by=by, edited_text=edited)
        session.commit()
        reference, email_id = approval.draft.contact.reference, approval.email.id
    # The approval is committed: whatever stops the email going now (the server down, a
    # secret this shell cannot read), it stays queued and goes when the server answers.
    status, error = drafts.send_approved(config, sessions, email_id,
                                         lambda: Mailbox.connect(config.mailbox))
    if status == Status.SENT:
        print(f"draft {draft_id} approved for {reference} and sent")
        return 0
    if status in (Status.FAILED, Status.SUPPRESSED):
        print(f"draft {draft_id} approved for {reference}, but not sent: {error}. "
              f"Reply another way and record it: mailbot concerns respond {reference} "
              f"--by NAME --method phone")
        return 1
    print(f"draft {draft_id} approved for {reference} and queued: it will be sent when "
          f"the mail server answers")
    return 0


@drafts_group.command("reject")
@click.argument("draft_id", metavar="ID", type=int)
@by_option()
@click.option("--reason", required=True)
@pass_context
def reject(context: Context, draft_id: int, by: str, reason: str) -> int:
    """reject a draft"""
    from mailbot.replies import drafts

    with context.sessions() as session:
        drafts.reject(session, draft_id, by=by, reason=reason)
        session.commit()
    print(f"draft {draft_id} rejected")
    return 0


@drafts_group.command("redraft")
@click.argument("draft_id", metavar="ID", type=int)
@by_option()
@pass_context
def redraft(context: Context, draft_id: int, by: str) -> int:
    """rewrite a draft for today's consent"""
    from mailbot.replies import drafts

    with context.sessions() as session:
        new = drafts.redraft(session, context.config, draft_id, by=by)
        session.commit()
        print(f"draft {draft_id} superseded by draft {new.id} ({new.template})")
    return 0


COMMANDS = (drafts_group,)


def draft_row(draft: Any, full: bool = False) -> dict[str, Any]:
    from mailbot.replies.drafts import state_of, unfilled_markers

    contact = draft.contact
    row = {
        "id": draft.id,
        "reference": contact.reference,
        "template": draft.template,
        "consent": draft.consent_scope,
        "status": draft.status,
        "state": state_of(draft),
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
