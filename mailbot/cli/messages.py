"""`mailbot messages`: every message taken from the inbox and where it went, and the
replay of a quarantined one once its cause is fixed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mailbot.cli.context import Context

COMMANDS = ("messages",)


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    messages = verbs.add_parser("messages", help="every ingested message and where it went")
    messages_verbs = messages.add_subparsers(dest="messages_verb", required=True)
    listing = messages_verbs.add_parser("list", help="list ingested messages")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--disposition", help="only this disposition (e.g. quarantined)")
    show = messages_verbs.add_parser("show", help="one message, with its raw bytes")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="print the raw message only")
    replay = messages_verbs.add_parser(
        "replay", help="read a quarantined message again (after fixing the cause)"
    )
    replay.add_argument("id", type=int)
    replay.add_argument("--by", required=True)


def dispatch(context: Context, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from mailbot.db.models import Contact, StoredMessage

    if args.messages_verb == "replay":
        return _replay(context, args)
    with context.sessions() as session:
        if args.messages_verb == "show":
            message = session.get(StoredMessage, args.id)
            if message is None:
                print(f"mailbot: no message {args.id}", file=sys.stderr)
                return 1
            if args.raw:
                sys.stdout.buffer.write(message.raw or b"")
                return 0
            print(json.dumps(_message_row(message), indent=2, ensure_ascii=False))
            return 0
        query = select(StoredMessage).order_by(StoredMessage.id)
        if args.disposition:
            query = query.where(StoredMessage.disposition == args.disposition)
        messages = session.execute(query).scalars().all()
        references = dict(
            (pk, ref) for pk, ref in session.execute(select(Contact.message_pk, Contact.reference))
        )
        rows = [_message_row(m, references.get(m.id)) for m in messages]
    if args.json:
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


def _replay(context: Context, args: argparse.Namespace) -> int:
    from mailbot.ingest.pipeline import Pipeline
    from mailbot.ingest.quarantine import move_out_of_quarantine, replay

    config, sessions = context.config, context.sessions
    pipeline = Pipeline(config, sessions)
    with sessions() as session:
        done = replay(session, config, pipeline.rules, args.id, by=args.by)
        session.commit()
    if done.disposition == "quarantined":
        print(f"message {args.id} is still unreadable: {done.reason}")
        return 5
    moved = move_out_of_quarantine(config, done.message)
    pipeline.send()
    print(f"message {args.id} replayed: {done.disposition}"
          + (f" as {done.reference}" if done.reference else "")
          + ("; moved to the processed folder" if moved else ""))
    return 0


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
