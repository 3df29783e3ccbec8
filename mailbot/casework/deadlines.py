"""Watching deadlines: decides when the safety team must hear that a concern is close to
72 hours without a response, and when one person's repeated contact needs a single point
of contact.

Each safer custody concern is due `respond_within_hours` after it was received (the IMAP
INTERNALDATE); the clock stops when a response is recorded. When a concern crosses a
threshold in `warn_when_hours_left`, or breaches, the safety team gets one email, never
repeated: the alert is recorded with the concern (one row per concern and threshold) in
the same transaction as the email is queued. A concern first seen already late gets the
most severe alert it has crossed at once, and the milder ones are marked as passed.
Concerns crossing together share one digest, sorted by time left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from mailbot.casework.audit import record_event
from mailbot.config import Config
from mailbot.db.models import Contact, ContactAlert, utcnow
from mailbot.logs import event
from mailbot.replies.consent import ConsentError, contact_key
from mailbot.replies.outbox import enqueue
from mailbot.replies.render import format_london_time

log = logging.getLogger(__name__)

BREACH = "breach"
PERSISTENT = "persistent"
PERSISTENT_FLAG = "persistent_contact"
CLOSED = "closed"


def warn_kind(hours: int) -> str:
    return f"warn_{hours}h"


def due_by(contact: Contact, config: Config) -> datetime:
    return contact.received_at + timedelta(hours=config.deadlines.respond_within_hours)


def hours_left(contact: Contact, config: Config, now: datetime | None = None) -> float:
    return (due_by(contact, config) - (now or utcnow())).total_seconds() / 3600


def is_open(contact: Contact) -> bool:
    return contact.is_safer_custody and contact.responded_at is None and contact.status != CLOSED


@dataclass
class Crossing:
    contact: Contact
    kind: str
    hours_left: float


def due_alerts(
    contacts: list[Contact], config: Config, now: datetime
) -> tuple[list[Crossing], list[tuple[Contact, str]]]:
    """Pure: the alert each open concern needs now, and the milder ones it has passed."""
    thresholds = sorted(set(config.deadlines.warn_when_hours_left), reverse=True)
    crossings: list[Crossing] = []
    passed: list[tuple[Contact, str]] = []
    for contact in contacts:
        if not is_open(contact):
            continue
        left = hours_left(contact, config, now)
        already = {alert.kind for alert in contact.alerts}
        crossed = [warn_kind(h) for h in thresholds if left <= h]
        if left <= 0:
            crossed.append(BREACH)
        fresh = [kind for kind in crossed if kind not in already]
        if not fresh:
            continue
        # The most severe threshold crossed is the one that is news.
        crossings.append(Crossing(contact, crossed[-1], left))
        passed += [(contact, kind) for kind in fresh[:-1]]
    return crossings, passed


def check(session: Session, config: Config, now: datetime | None = None) -> list[Crossing]:
    """Queue the warning and breach digests that are due; returns what was queued."""
    now = now or utcnow()
    earliest_warning = max([*config.deadlines.warn_when_hours_left, 0])
    window_start = now - timedelta(
        hours=config.deadlines.respond_within_hours - earliest_warning
    )
    contacts = list(
        session.execute(
            select(Contact)
            .where(Contact.is_safer_custody.is_(True))
            .where(Contact.responded_at.is_(None))
            .where(Contact.status != CLOSED)
            .where(Contact.received_at <= window_start)
            .options(selectinload(Contact.alerts), selectinload(Contact.drafts))
        ).scalars()
    )
    crossings, passed = due_alerts(contacts, config, now)
    for contact, kind in passed:
        session.add(ContactAlert(contact=contact, kind=kind, created_at=now, sent=False))
    if not crossings:
        return []
    for group in (
        [c for c in crossings if c.kind != BREACH],
        [c for c in crossings if c.kind == BREACH],
    ):
        if group:
            _queue_digest(session, config, sorted(group, key=lambda c: c.hours_left), now)
    return crossings


def _queue_digest(
    session: Session, config: Config, crossings: list[Crossing], now: datetime
) -> None:
    breach = crossings[0].kind == BREACH
    count = len(crossings)
    noun = "concern" if count == 1 else "concerns"
    hours = config.deadlines.respond_within_hours
    subject = (
        f"BREACH: {count} safer custody {noun} past {hours} hours unanswered"
        if breach
        else f"Warning: {count} safer custody {noun} near {hours} hours unanswered"
    )
    lines = [subject, ""]
    for crossing in crossings:
        lines += _digest_entry(crossing, config)
    lines += [
        "",
        "Record a response with `mailbot drafts approve ID --by NAME`, or a phone call with",
        "`mailbot concerns respond REFERENCE --by NAME --method phone --note TEXT`.",
    ]
    text = "\n".join(lines) + "\n"
    recipients = config.alerts.safety_team
    if not recipients:
        event(log, logging.ERROR, "deadline_alert_has_no_recipients", concerns=count,
              fix="set [alerts] safety_team")
    emails = [
        enqueue(session, config, kind="deadline_breach" if breach else "deadline_warning",
                to=recipient, subject=subject, text=text, auto_submitted="auto-generated")
        for recipient in recipients
    ]
    session.flush()
    for crossing in crossings:
        session.add(
            ContactAlert(
                contact=crossing.contact, kind=crossing.kind, created_at=now, sent=True,
                outbox_id=emails[0].id if emails else None,
            )
        )
    event(log, logging.WARNING if breach else logging.INFO,
          "deadline_breach" if breach else "deadline_warning", concerns=count,
          references=",".join(c.contact.reference for c in crossings))


def _digest_entry(crossing: Crossing, config: Config) -> list[str]:
    contact = crossing.contact
    left = crossing.hours_left
    when = f"{left:.1f} hours left" if left > 0 else f"overdue by {-left:.1f} hours"
    drafts = [d for d in contact.drafts if d.status == "draft"]
    holder = (
        f"draft {drafts[0].id} ({drafts[0].template}) awaiting approval"
        if drafts
        else "no open draft"
    )
    entry = [
        f"- {contact.reference}: received {format_london_time(contact.received_at)}, {when}",
        f"  urgency {contact.urgency}; {holder}",
    ]
    if config.alerts.include_text:
        entry.append("  " + " ".join(contact.concern_text.split())[:300])
    return entry


def person_key(contact: Contact) -> str | None:
    """Who "the same person" is, for persistent contact and the figures: the email
    address case-folded, else the name (case and spaces folded) with the phone's digits
    (`consent.contact_key`). None when the contact gives neither."""
    return _key(contact.submitter_email, contact.submitter_name, contact.submitter_phone)


def _key(email: str, name: str, phone: str) -> str | None:
    try:
        return contact_key(email, name, phone)
    except ConsentError:
        return None


def note_persistent_contact(session: Session, config: Config, contact: Contact) -> bool:
    """Flag a contact that is the `persistent_threshold`-th or later from the same person
    about the same prisoner within the window; notify once per person per window."""
    key = person_key(contact)
    if key is None or not contact.prisoner_number:
        return False
    settings = config.deadlines
    since = contact.received_at - timedelta(days=settings.persistent_window_days)
    count = _earlier_contacts(session, contact, key, since)
    if count < settings.persistent_threshold:
        return False
    if PERSISTENT_FLAG not in contact.flags:
        contact.flags = [*contact.flags, PERSISTENT_FLAG]
    notice_key = f"{key}|{contact.prisoner_number}"
    window_start = utcnow() - timedelta(days=settings.persistent_window_days)
    already = session.scalar(
        select(func.count())
        .select_from(ContactAlert)
        .where(ContactAlert.kind == PERSISTENT)
        .where(ContactAlert.person_key == notice_key)
        .where(ContactAlert.created_at >= window_start)
    )
    if already:
        return True
    recipients = config.alerts.persistent or config.alerts.safety_team
    text = (
        f"The same person has contacted the safer custody team {count} times in "
        f"{settings.persistent_window_days} days about the same prisoner; the latest is "
        f"{contact.reference}.\n\n"
        "The safer custody toolkit suggests agreeing a single point of contact for them.\n"
        f"See `mailbot concerns show {contact.reference}` for the full record.\n"
    )
    for recipient in recipients:
        email = enqueue(session, config, kind="persistent_contact", to=recipient,
                        subject=f"Persistent contact: {count} contacts in "
                                f"{settings.persistent_window_days} days [{contact.reference}]",
                        text=text, reference=contact.reference,
                        auto_submitted="auto-generated")
        email.contact = contact
    session.add(ContactAlert(contact=contact, kind=PERSISTENT, person_key=notice_key,
                             created_at=utcnow(), sent=bool(recipients)))
    event(log, logging.INFO, "persistent_contact", reference=contact.reference, count=count)
    return True


def _earlier_contacts(session: Session, contact: Contact, key: str, since: datetime) -> int:
    """Contacts from this person about this prisoner in the window up to this one
    (itself included). The same person is `person_key`'s, here as everywhere: who
    contacted the database about the prisoner is read, and compared by that key."""
    about_prisoner = session.execute(
        select(Contact.submitter_email, Contact.submitter_name, Contact.submitter_phone)
        .where(Contact.prisoner_number == contact.prisoner_number)
        .where(Contact.received_at >= since)
        .where(Contact.received_at <= contact.received_at)
    )
    return sum(1 for who in about_prisoner if _key(*who) == key)


def record_phone_response(
    session: Session, contact: Contact, *, by: str, method: str, note: str
) -> None:
    now = utcnow()
    if contact.responded_at is None:
        contact.responded_at, contact.responded_by = now, by
    if contact.status != CLOSED:
        contact.status = "responded"
    for draft in contact.drafts:
        if draft.status == "draft":
            draft.status, draft.decided_by, draft.decided_at = "superseded", by, now
    record_event(session, actor=by, action="response_recorded", contact_id=contact.id,
                 detail={"method": method, "note": note})

