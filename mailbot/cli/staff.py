"""Staff commands: the consent register, draft approval and template checks.

Each command is one clear decision by a named member of staff; refusals (consent
withdrawn since drafting, places left to fill, a template breaking its policy) are
printed as one line saying what to do, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.casework.actions import CaseworkError
from mailbot.config import Config
from mailbot.db.models import Contact, Draft
from mailbot.mailbox.fetch import Mailbox
from mailbot.replies import consent, drafts
from mailbot.replies.outbox import send_due

EXIT_REFUSED = 5


def dispatch(config: Config, sessions: sessionmaker[Session], args: argparse.Namespace) -> int:
    try:
        if args.verb == "consent":
            return _consent(sessions, args)
        if args.verb == "drafts":
            return _drafts(config, sessions, args)
        if args.verb == "templates":
            return _preview(config, sessions, args)
        if args.verb == "concerns":
            return _concerns(config, sessions, args)
        if args.verb == "status":
            return _status(config, sessions)
        if args.verb == "retention":
            return _retention(config, sessions, dry_run=args.dry_run)
    except (consent.ConsentError, drafts.DraftError, CaseworkError) as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    raise AssertionError(args.verb)


def _consent(sessions: sessionmaker[Session], args: argparse.Namespace) -> int:
    with sessions() as session:
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


def _concerns(config: Config, sessions: sessionmaker[Session], args: argparse.Namespace) -> int:
    from datetime import datetime

    from mailbot.casework import actions as casework
    from mailbot.casework.deadlines import record_phone_response
    from mailbot.db.models import utcnow
    from mailbot.reports.export import entry

    verb = args.concerns_verb
    with sessions() as session:
        contact = casework.find(session, args.reference)
        if verb == "show":
            print(json.dumps(entry(contact, config, utcnow()), indent=2, ensure_ascii=False))
            return 0
        if verb == "respond":
            if not args.by.strip():
                raise casework.CaseworkError("--by must name the member of staff")
            record_phone_response(session, contact, by=args.by, method=args.method,
                                  note=args.note)
            message = f"response by {args.method} recorded for {args.reference}"
        elif verb == "action":
            try:
                when = datetime.fromisoformat(args.when) if args.when else None
            except ValueError as exc:
                raise casework.CaseworkError(f"--when: {exc}") from exc
            casework.record_action(session, contact, kind=args.kind, by=args.by,
                                   note=args.note, outcome=args.outcome,
                                   department=args.department, when=when)
            message = f"{args.kind} recorded for {args.reference}"
        else:
            casework.close(session, contact, by=args.by, outcome=args.outcome)
            message = f"{args.reference} closed"
        session.commit()
    print(message)
    return 0


def _retention(config: Config, sessions: sessionmaker[Session], *, dry_run: bool) -> int:
    from mailbot.casework import retention
    with sessions() as session:
        if dry_run:
            print(retention.plan(session, config).describe())
            print("dry run: nothing changed")
            return 0
        done = retention.apply(session, config)
        session.commit()
    print(done.describe())
    return 0


def _status(config: Config, sessions: sessionmaker[Session]) -> int:
    from mailbot.service.health import status

    report = status(config, sessions)
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"UNHEALTHY: {problem}")
    print("status: healthy" if report.healthy else "status: unhealthy")
    return 0 if report.healthy else 1


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


def draft_row(draft: Draft, full: bool = False) -> dict[str, Any]:
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
    }
    if full:
        row["text"] = draft.body_text
        row["unfilled"] = drafts.unfilled_markers(draft.body_text)
    return row


def _drafts(config: Config, sessions: sessionmaker[Session], args: argparse.Namespace) -> int:
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


def _preview(config: Config, sessions: sessionmaker[Session], args: argparse.Namespace) -> int:
    from mailbot.replies.policy import preview

    context = None
    if args.concern:
        with sessions() as session:
            contact = session.execute(
                select(Contact).where(Contact.reference == args.concern)
            ).scalar_one_or_none()
            if contact is None:
                raise drafts.DraftError(f"no concern {args.concern}")
            state = consent.for_contact(session, contact)
            context = drafts.template_context(contact, config, state.scope)
    rendered = preview(args.name, context, override_dir=config.replies.override_dir)
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    return 0


def templates_check(config: Config) -> int:
    from mailbot.replies.policy import check_templates

    problems = check_templates(config.replies.override_dir)
    for problem in problems:
        print(f"mailbot: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("templates OK")
    return 0
