"""The communications log as data: one record per contact from a family or significant
other, for `mailbot export` (JSON for scripts, CSV for a spreadsheet)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, joinedload, selectinload

from mailbot.casework.deadlines import due_by
from mailbot.config import Config
from mailbot.db.models import Contact, utcnow


def log_entries(session: Session, config: Config) -> list[dict[str, Any]]:
    related = aliased(Contact)
    rows = session.execute(
        select(Contact, related.reference)
        .outerjoin(related, Contact.related_contact_id == related.id)
        .options(joinedload(Contact.message), selectinload(Contact.emails),
                 selectinload(Contact.drafts), selectinload(Contact.alerts),
                 selectinload(Contact.actions))
        .order_by(Contact.received_at, Contact.id)
    )
    now = utcnow()
    return [entry(contact, config, now, related) for contact, related in rows]


def entry(
    contact: Contact, config: Config, now: datetime, related_reference: str | None = None
) -> dict[str, Any]:
    clock_stopped = contact.responded_at or now
    due = due_by(contact, config)
    return {
        "reference": contact.reference,
        "message_id": contact.message.message_id,
        "received_at": _iso(contact.received_at),
        "source": contact.source,
        "verified": contact.verified,
        "submitter": {
            "name": contact.submitter_name,
            "email": contact.submitter_email,
            "phone": contact.submitter_phone,
            "relationship": contact.relationship_to_prisoner,
            "contact_preference": contact.contact_preference,
        },
        "prisoner": {
            "name": contact.prisoner_name,
            "number": contact.prisoner_number,
            "number_as_typed": contact.prisoner_number_as_typed,
            "dob": _iso(contact.prisoner_dob),
            "establishment": contact.establishment,
            "location": contact.location,
        },
        "subject": contact.subject,
        "topic": contact.topic,
        "urgency_choice": contact.urgency_choice,
        "concern_text": contact.concern_text,
        "consent_answers": {
            "tell_prisoner": contact.consent_tell_prisoner,
            "understood": contact.consent_understood,
        },
        "portal_reference": contact.portal_reference,
        "submitted_at": _iso(contact.submitted_at),
        "related_reference": related_reference,
        "flags": list(contact.flags),
        "problems": list(contact.problems),
        "status": contact.status,
        "is_safer_custody": contact.is_safer_custody,
        "categories": list(contact.categories),
        "urgency": contact.urgency,
        "triage_reasons": list(contact.triage_reasons),
        "could_not_account_for": list(contact.unaccounted),
        "language": contact.language,
        "replies": [
            {
                "kind": email.kind,
                "to": email.recipient,
                "status": email.status,
                "sent_at": _iso(email.sent_at),
                "message_id": email.message_id,
            }
            for email in contact.emails
        ],
        "consent": contact.drafts[0].consent_scope if contact.drafts else None,
        "drafts": [
            {"id": d.id, "template": d.template, "status": d.status} for d in contact.drafts
        ],
        "responded_at": _iso(contact.responded_at),
        "due_by": _iso(due) if contact.is_safer_custody else None,
        "hours_left": (
            round((due - clock_stopped).total_seconds() / 3600, 2)
            if contact.is_safer_custody
            else None
        ),
        "alerts": [
            {"kind": alert.kind, "sent_at": _iso(alert.created_at)}
            for alert in contact.alerts
            if alert.sent
        ],
        "responded_by": contact.responded_by,
        "actions": [
            {
                "kind": action.kind,
                "department": action.department,
                "at": _iso(action.happened_at),
                "by": action.by,
                "note": action.note,
                "outcome": action.outcome,
            }
            for action in contact.actions
        ],
        "closed_at": _iso(contact.closed_at),
        "closed_by": contact.closed_by,
        "outcome": contact.outcome,
        "first_response_hours": (
            round((contact.responded_at - contact.received_at).total_seconds() / 3600, 2)
            if contact.responded_at
            else None
        ),
    }


def to_json(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


def to_csv(entries: list[dict[str, Any]]) -> str:
    """The same rows flat: nested keys become `submitter.name`, lists join with `; `."""
    flat = [dict(_flatten(e)) for e in entries]
    columns: list[str] = []
    for row in flat:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({key: _csv_safe(value) for key, value in row.items()})
    return out.getvalue()


def _flatten(value: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            yield from _flatten(item, f"{name}.")
        elif isinstance(item, list) and any(isinstance(x, dict) for x in item):
            yield name, json.dumps(item, ensure_ascii=False)
        elif isinstance(item, list):
            yield name, "; ".join(str(x) for x in item)
        elif item is None:
            yield name, ""
        else:
            yield name, item


def _csv_safe(value: Any) -> Any:
    # A family's text opened in a spreadsheet must stay text, never a formula.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
