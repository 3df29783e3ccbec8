"""`mailbot messages`: every message taken from the inbox and where it went, and the
replay of a quarantined one once its cause is fixed."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mailbot.cli.context import Context, by_option, pass_context


@click.group("messages")
def messages_group() -> None:
    """every ingested message and where it went"""


@messages_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--disposition", help="only this disposition (e.g. quarantined)")
@pass_context
def listing(context: Context, as_json: bool, disposition: str | None) -> int:
    """list ingested messages"""
    from sqlalchemy import select

    from mailbot.db.models import Contact, StoredMessage

    with context.sessions() as session:
        query = select(StoredMessage).order_by(StoredMessage.id)
        if disposition:
            query = query.where(StoredMessage.disposition == disposition)
        messages = session.execute(query).scalars().all()
        references = dict(
            (pk, ref) for pk, ref in session.execute(select(Contact.message_pk, Contact.reference))
        )
        rows = [_message_row(m, references.get(m.id)) for m in messages]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(f"{'id':>6}  {'received (UTC)':16}  {'kind':13} {'disposition':12} {'reference':14} why")
    for row in rows:
        print(
            f"{row['id']:>6}  {row['received_at'][:16].replace('T', ' '):16}  "
            f"{row['kind']:13} {row['disposition']:12} {row['reference'] or '-':14} "
            f"{row['reason']}"
        )
    return 0


@messages_group.command("show")
@click.argument("message_id", metavar="ID", type=int)
@click.option("--raw", is_flag=True, help="print the raw message only")
@pass_context
def show(context: Context, message_id: int, raw: bool) -> int:
    """one message, with its raw bytes"""
    from mailbot.db.models import StoredMessage

    with context.sessions() as session:
        message = session.get(StoredMessage, message_id)
        if message is None:
            print(f"mailbot: no message {message_id}", file=sys.stderr)
            return 1
        if raw:
            sys.stdout.buffer.write(message.raw or b"")
            return 0
        print(json.dumps(_message_row(message), indent=2, ensure_ascii=False))
    return 0


@messages_group.command("replay")
@click.argument("message_id", metavar="ID", type=int)
@by_option()
@pass_context
def replay(context: Context, message_id: int, by: str) -> int:
    """read a quarantined message, or a form that could not be read, again (after
    fixing the cause)"""
    from mailbot.ingest import quarantine
    from mailbot.ingest.pipeline import Pipeline

    config, sessions = context.config, context.sessions
    pipeline = Pipeline(config, sessions)
    with sessions() as session:
        done = quarantine.replay(session, config, pipeline.rules, message_id, by=by)
        session.commit()
    if done.still_unreadable:
        print(f"message {message_id} is still unreadable: {done.reason}")
        return 5
    moved = quarantine.move_out_of_quarantine(config, done.message)
    pipeline.send()
    print(f"message {message_id} replayed: {done.disposition}"
          + (f" as {done.reference}" if done.reference else "")
          + ("; moved to the processed folder" if moved else ""))
    return 0


COMMANDS = (messages_group,)


def _message_row(message: Any, reference: str | None = None) -> dict[str, Any]:
    return {
        "id": message.id,
        "received_at": message.received_at.isoformat(),
        "message_id": message.message_id,
        "kind": message.kind,
        "verified": message.verified,
        "disposition": message.disposition,
        "destination": message.destination,
        "reason": message.reason,
        "reference": reference or (message.contact.reference if message.contact else None),
        "size": message.size,
        "uid": message.uid,
        "recognition_reasons": list(message.recognition_reasons),
    }
