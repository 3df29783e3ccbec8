"""`mailbot concerns`: one concern's record, and what staff did for it (actions,
a response made outside mailbot, the closing)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from mailbot.cli.context import Context, by_option, pass_context


@click.group("concerns")
def concerns_group() -> None:
    """safer custody concerns"""


@concerns_group.command("show")
@click.argument("reference")
@pass_context
def show(context: Context, reference: str) -> int:
    """one concern's full record"""
    from sqlalchemy import select

    from mailbot.casework import actions
    from mailbot.db.models import AuditEvent, utcnow
    from mailbot.mailbox.mail_client import STAFF_MAIL
    from mailbot.replies.drafts import state_of
    from mailbot.reports.export import entry

    with context.sessions() as session:
        contact = actions.find(session, reference)
        record = entry(contact, context.config, utcnow())
        record["drafts"] = [
            {"id": d.id, "template": d.template, "status": d.status, "state": state_of(d)}
            for d in contact.drafts
        ]
        record["response"] = _response(contact, record["drafts"])
        # Mail staff sent about the concern that was not the response, and why not.
        record["staff_mail"] = [
            {"by": e.actor, **e.detail}
            for e in session.execute(
                select(AuditEvent).where(AuditEvent.contact_id == contact.id)
                .where(AuditEvent.action == STAFF_MAIL).order_by(AuditEvent.id)
            ).scalars()
        ]
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


def _response(contact: Any, drafts: list[dict[str, Any]]) -> str:
    """Whether a response reached the family, in one phrase for staff: when and by whom,
    "approved, not yet sent" (the clock still runs), or "no response yet"."""
    if contact.responded_at is not None:
        return f"responded {contact.responded_at.isoformat()} by {contact.responded_by}"
    approved = [d["state"] for d in drafts if d["status"] == "approved"]
    return approved[0] if approved else "no response yet"


@concerns_group.command("respond")
@click.argument("reference")
@by_option()
@click.option("--method", required=True,
              type=click.Choice(("phone", "email", "letter", "in_person")))
@click.option("--note", default="")
@pass_context
def respond(context: Context, reference: str, by: str, method: str, note: str) -> int:
    """record a response made outside mailbot (e.g. by phone)"""
    from mailbot.casework import actions
    from mailbot.casework.deadlines import record_phone_response

    with context.sessions() as session:
        contact = actions.find(session, reference)
        if not by.strip():
            raise actions.CaseworkError("--by must name the member of staff")
        record_phone_response(session, contact, by=by, method=method, note=note)
        session.commit()
    print(f"response by {method} recorded for {reference}")
    return 0


@concerns_group.command("action")
@click.argument("reference")
@click.option("--kind", required=True, help="welfare_check, referral, acct_opened...")
@by_option()
@click.option("--note", default="")
@click.option("--outcome", default="")
@click.option("--department", help="for referrals: healthcare, mental_health...")
@click.option("--when", help="when it happened (ISO 8601 with zone); default now")
@pass_context
def action(context: Context, reference: str, kind: str, by: str, note: str, outcome: str,
           department: str | None, when: str | None) -> int:
    """record what was done for a concern"""
    from mailbot.casework import actions

    with context.sessions() as session:
        contact = actions.find(session, reference)
        try:
            moment = datetime.fromisoformat(when) if when else None
        except ValueError as exc:
            raise actions.CaseworkError(f"--when: {exc}") from exc
        actions.record_action(session, contact, kind=kind, by=by, note=note, outcome=outcome,
                              department=department, when=moment)
        session.commit()
    print(f"{kind} recorded for {reference}")
    return 0


@concerns_group.command("close")
@click.argument("reference")
@by_option()
@click.option("--outcome", required=True)
@pass_context
def close(context: Context, reference: str, by: str, outcome: str) -> int:
    """close a concern (only ever by staff)"""
    from mailbot.casework import actions

    with context.sessions() as session:
        contact = actions.find(session, reference)
        actions.close(session, contact, by=by, outcome=outcome)
        session.commit()
    print(f"{reference} closed")
    return 0


COMMANDS = (concerns_group,)
