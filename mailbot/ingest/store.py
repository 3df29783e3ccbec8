"""The store stage: writes what was learned from a message into the communications log.

It decides only identity: whether these bytes were recorded before (a message seen again
after a crash), whether a Message-ID was already logged (a second delivery), and which
reference a new log entry gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from mailbot.casework.pseudonym import person_hash
from mailbot.db.models import Contact, Disposition, ReferenceCounter, StoredMessage
from mailbot.ingest.examine import Examined
from mailbot.parsers.contact import ContactStatus

REFERENCE_PREFIX = "SC"


def format_reference(year: int, number: int) -> str:
    return f"{REFERENCE_PREFIX}-{year}-{number:05d}"


def allocate_reference(session: Session, year: int) -> str:
    """Next reference for the year, counted by one UPDATE in the database: the counter
    row stays locked until the transaction ends, so no two writers get the same number."""
    counters = ReferenceCounter.__table__
    connection = session.connection()
    number = connection.execute(
        update(counters)
        .where(counters.c.year == year)
        .values(last_number=counters.c.last_number + 1)
        .returning(counters.c.last_number)
    ).scalar()
    if number is None:  # the year's first reference
        number = 1
        connection.execute(insert(counters).values(year=year, last_number=number))
    return format_reference(year, number)


def recorded_by_hash(session: Session, hashes: Iterable[str]) -> dict[str, StoredMessage]:
    hashes = list(hashes)
    if not hashes:
        return {}
    rows = session.execute(select(StoredMessage).where(StoredMessage.sha256.in_(hashes)))
    return {message.sha256: message for message in rows.scalars()}


def recorded_by_message_id(
    session: Session, message_ids: Iterable[str | None]
) -> dict[str, StoredMessage]:
    """The first message recorded under each of these Message-IDs (not a duplicate)."""
    ids = sorted({mid[:998] for mid in message_ids if mid})
    if not ids:
        return {}
    rows = session.execute(
        select(StoredMessage)
        .where(StoredMessage.message_id.in_(ids))
        .where(StoredMessage.duplicate_of_id.is_(None))
        .order_by(StoredMessage.id.desc())
    )
    return {message.message_id: message for message in rows.scalars() if message.message_id}


def record(
    session: Session,
    examined: Examined,
    *,
    raw: bytes | None,
    sha256: str,
    size: int,
    folder: str,
    uidvalidity: int | None,
    uid: int | None,
    received_at: datetime,
    duplicate_of: StoredMessage | None = None,
) -> StoredMessage:
    """Add one message (and its log entry, if it is a family's contact) to the session."""
    disposition = examined.disposition
    reason = examined.reason
    if duplicate_of is not None:
        disposition = Disposition.DUPLICATE
        reason = "same Message-ID and body as a message recorded before"
    message = StoredMessage(
        sha256=sha256,
        message_id=(examined.message_id or None) and examined.message_id[:998],
        mailbox_folder=folder,
        uidvalidity=uidvalidity,
        uid=uid,
        received_at=received_at,
        size=size,
        kind=examined.kind,
        verified=examined.verified,
        recognition_reasons=list(examined.recognition_reasons),
        disposition=disposition,
        reason=reason,
        sender=(examined.sender or None) and examined.sender[:320],
        subject=examined.subject,
        raw=raw,
        duplicate_of_id=duplicate_of.id if duplicate_of is not None else None,
    )
    session.add(message)
    if examined.contact is not None and duplicate_of is None:
        session.add(contact_row(session, message, examined, received_at))
    session.flush()
    return message


def contact_row(
    session: Session, message: StoredMessage, examined: Examined, received_at: datetime
) -> Contact:
    """The log entry for a message already stored (new, or replayed from quarantine)."""
    related_id = None
    if examined.our_reference:
        related_id = session.execute(
            select(Contact.id).where(Contact.reference == examined.our_reference)
        ).scalar_one_or_none()
    contact = Contact(
        reference=allocate_reference(session, received_at.year),
        message=message,
        received_at=received_at,
        status=ContactStatus.NEW,
        related_contact_id=related_id,
        **contact_fields(session, examined),
    )
    return contact


def contact_fields(session: Session, examined: Examined) -> dict[str, Any]:
    """What the parse and triage stages learned, as log entry columns."""
    parsed = examined.contact
    if parsed is None:
        raise ValueError("contact_fields needs a parsed contact; this message has none")
    triage = examined.triage
    return {
        "person_hash": person_hash(
            session,
            email=parsed.submitter.email,
            name=parsed.submitter.name,
            phone=parsed.submitter.phone,
            prisoner_number=parsed.prisoner.number,
            prisoner_name=parsed.prisoner.name,
        ),
        "is_safer_custody": triage.is_safer_custody if triage else True,
        "categories": list(triage.categories) if triage else [],
        "urgency": triage.urgency if triage else "urgent",
        "triage_reasons": (
            list(triage.reasons) if triage else ["not triaged: treated as a concern"]
        ),
        "unaccounted": list(triage.unaccounted) if triage else [],
        "language": triage.language if triage else "en",
        "source": str(parsed.source),
        "verified": examined.verified,
        "submitter_name": parsed.submitter.name,
        "submitter_email": parsed.submitter.email[:320],
        "submitter_email_valid": parsed.submitter.email_valid,
        "submitter_phone": parsed.submitter.phone[:64],
        "relationship_to_prisoner": parsed.submitter.relationship,
        "contact_preference": parsed.submitter.contact_preference,
        "prisoner_name": parsed.prisoner.name,
        "prisoner_number": parsed.prisoner.number[:16],
        "prisoner_number_as_typed": parsed.prisoner.number_as_typed,
        "prisoner_dob": parsed.prisoner.dob,
        "prisoner_dob_as_typed": parsed.prisoner.dob_as_typed,
        "establishment": parsed.prisoner.establishment,
        "location": parsed.prisoner.location,
        "subject": parsed.subject,
        "topic": parsed.topic,
        "urgency_choice": parsed.urgency_choice,
        "concern_text": parsed.concern_text,
        "consent_tell_prisoner": parsed.consent_tell_prisoner,
        "consent_understood": parsed.consent_understood,
        "portal_reference": parsed.portal_reference[:64],
        "submitted_at": parsed.submitted_at,
        "flags": [str(flag) for flag in parsed.flags] + (
            [f"language:{triage.language}"] if triage and triage.language != "en" else []),
        "problems": list(parsed.problems),
    }
