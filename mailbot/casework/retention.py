"""Retention: decides which personal data is old enough to go, and removes it while
keeping what the monthly figures count.

A concern received more than `[retention] months` ago is anonymised: names, addresses,
phone numbers, prisoner details, the family's text, the raw message, draft and email
texts, audit details and notes are removed, everywhere they were copied. What the reports
count stays: when it arrived, how, whether it was safer custody, its categories, urgency,
flags, wing, and when it was answered and closed. Raw message bytes can have a shorter
retention of their own (`raw_message_months`), for every message, automatic mail too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import (
    AuditEvent,
    ConcernAction,
    ConsentRecord,
    Contact,
    ContactAlert,
    Draft,
    OutboxEmail,
    StoredMessage,
    utcnow,
)
from mailbot.logs import event
from mailbot.replies.respond import without_quotes

log = logging.getLogger(__name__)

# Every personal field of a log entry, and what it becomes.
CONTACT_PERSONAL = {
    "submitter_name": "",
    "submitter_email": "",
    "submitter_phone": "",
    "relationship_to_prisoner": "",
    "contact_preference": "",
    "prisoner_name": "",
    "prisoner_number": "",
    "prisoner_number_as_typed": "",
    "prisoner_dob": None,
    "prisoner_dob_as_typed": "",
    "establishment": "",
    "subject": "",
    "concern_text": "",
    "consent_tell_prisoner": "",
    "consent_understood": "",
    "portal_reference": "",
    "problems": [],
    "outcome": None,
}


def months_before(moment: datetime, months: int) -> datetime:
    month_index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, 28)
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass
class Plan:
    cutoff: datetime
    raw_cutoff: datetime
    contacts: list[int] = field(default_factory=list)
    raw_messages: int = 0
    consent_records: int = 0

    def describe(self) -> str:
        return (
            f"concerns received before {self.cutoff:%Y-%m-%d} to anonymise: "
            f"{len(self.contacts)}\n"
            f"raw messages received before {self.raw_cutoff:%Y-%m-%d} to remove: "
            f"{self.raw_messages}\n"
            f"withdrawn consent records older than {self.cutoff:%Y-%m-%d} to anonymise: "
            f"{self.consent_records}"
        )


def plan(session: Session, config: Config, now: datetime | None = None) -> Plan:
    now = now or utcnow()
    result = Plan(
        cutoff=months_before(now, config.retention.months),
        raw_cutoff=months_before(now, config.retention.raw_message_months),
    )
    result.contacts = list(
        session.execute(
            select(Contact.id)
            .where(Contact.received_at < result.cutoff)
            .where(Contact.anonymised_at.is_(None))
        ).scalars()
    )
    result.raw_messages = len(
        session.execute(
            select(StoredMessage.id)
            .where(StoredMessage.received_at < result.raw_cutoff)
            .where(or_(StoredMessage.raw.is_not(None), StoredMessage.sender.is_not(None)))
        ).all()
    )
    result.consent_records = len(_old_consent(session, result.cutoff))
    return result


def apply(session: Session, config: Config, now: datetime | None = None) -> Plan:
    """Anonymise everything the plan names. The caller commits."""
    now = now or utcnow()
    todo = plan(session, config, now)
    for contact_id in todo.contacts:
        _anonymise_contact(session, contact_id, now)
    session.execute(
        update(StoredMessage)
        .where(StoredMessage.received_at < todo.raw_cutoff)
        .values(raw=None, sender=None, subject=None, message_id=None,
                recognition_reasons=[])
    )
    # Emails not tied to a concern (alerts, digests) age out with the same cutoff.
    session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.created_at < todo.cutoff)
        .values(recipient="", subject="", raw=None, last_error=None)
    )
    session.execute(
        update(AuditEvent).where(AuditEvent.at < todo.cutoff).values(detail={})
    )
    for record in _old_consent(session, todo.cutoff):
        record.contact_key, record.prisoner_number, record.note = "", "", ""
    event(log, logging.INFO, "retention_applied", contacts=len(todo.contacts),
          raw_messages=todo.raw_messages, consent_records=todo.consent_records)
    return todo


def _old_consent(session: Session, cutoff: datetime) -> list[ConsentRecord]:
    return list(
        session.execute(
            select(ConsentRecord)
            .where(ConsentRecord.withdrawn_at.is_not(None))
            .where(ConsentRecord.withdrawn_at < cutoff)
            .where(ConsentRecord.contact_key != "")
        ).scalars()
    )


def _anonymise_contact(session: Session, contact_id: int, now: datetime) -> None:
    contact = session.get(Contact, contact_id)
    if contact is None:  # deleted by someone else since it was chosen: nothing to do
        return
    for name, empty in CONTACT_PERSONAL.items():
        setattr(contact, name, empty)
    contact.triage_reasons = [without_quotes(reason) for reason in contact.triage_reasons]
    contact.anonymised_at = now
    message = contact.message
    message.raw, message.sender, message.subject, message.message_id = None, None, None, None
    message.recognition_reasons = []
    message.reason = message.reason.split(":")[0] if message.reason else ""
    for draft in session.execute(select(Draft).where(Draft.contact_id == contact_id)).scalars():
        draft.recipient, draft.subject, draft.body_text = "", "", ""
        draft.body_html, draft.sent_text, draft.reject_reason = None, None, None
    session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.contact_id == contact_id)
        .values(recipient="", subject="", raw=None, last_error=None)
    )
    session.execute(
        update(ConcernAction)
        .where(ConcernAction.contact_id == contact_id)
        .values(note="", outcome="")
    )
    session.execute(
        update(AuditEvent).where(AuditEvent.contact_id == contact_id).values(detail={})
    )
    session.execute(
        update(ContactAlert).where(ContactAlert.contact_id == contact_id).values(person_key=None)
    )
    # Replies that joined this concern, and mail that duplicated it, go the same way.
    for duplicate in session.execute(
        select(StoredMessage).where(StoredMessage.duplicate_of_id == message.id)
    ).scalars():
        duplicate.raw, duplicate.sender, duplicate.subject = None, None, None
        duplicate.message_id = None
