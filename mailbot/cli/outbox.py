"""`mailbot outbox`: every email mailbot has sent or will send, and a failed one sent
again once a member of staff has checked it should go."""

from __future__ import annotations

import json

import click

from mailbot.cli.context import Context, by_option, pass_context


@click.group("outbox")
def outbox_group() -> None:
    """the emails mailbot sends, and their state"""


@outbox_group.command("list")
@click.option("--status", help="only this status (queued, sending, sent, failed, suppressed)")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def listing(context: Context, status: str | None, as_json: bool) -> int:
    """list the outbox, newest last"""
    from sqlalchemy import select

    from mailbot.db.models import OutboxEmail

    with context.sessions() as session:
        query = select(OutboxEmail).order_by(OutboxEmail.id)
        if status:
            query = query.where(OutboxEmail.status == status)
        rows = [
            {"id": row.id, "created_at": row.created_at.isoformat(), "kind": row.kind,
             "recipient": row.recipient, "status": row.status, "attempts": row.attempts,
             "reference": row.contact.reference if row.contact else None,
             "last_error": row.last_error or ""}
            for row in session.execute(query).scalars()
        ]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(f"{'id':>6}  {'created (UTC)':16}  {'kind':18} {'status':10} {'reference':14} "
          "recipient / why")
    for row in rows:
        why = f" ({row['last_error'][:120]})" if row["status"] == "failed" else ""
        print(f"{row['id']:>6}  {row['created_at'][:16].replace('T', ' '):16}  "
              f"{row['kind']:18} {row['status']:10} {row['reference'] or '-':14} "
              f"{row['recipient']}{why}")
    return 0


@outbox_group.command("resend")
@click.argument("email_id", metavar="ID", type=int)
@by_option("who checked that it should go again")
@pass_context
def resend(context: Context, email_id: int, by: str) -> int:
    """send a failed email again (the same message, the same Message-ID)"""
    from mailbot.mailbox.fetch import Mailbox
    from mailbot.replies import outbox

    config, sessions = context.config, context.sessions
    with sessions() as session:
        outbox.resend(session, email_id, by=by)
        session.commit()
    outbox.send_due(config, sessions, lambda: Mailbox.connect(config.mailbox))
    with sessions() as session:
        from mailbot.db.models import OutboxEmail

        row = session.get(OutboxEmail, email_id)
        state = row.status if row else "gone"
    if state == outbox.Status.SENT:
        print(f"email {email_id} sent again")
    else:
        print(f"email {email_id} queued again ({state}): it goes when the mail server answers")
    return 0


COMMANDS = (outbox_group,)
