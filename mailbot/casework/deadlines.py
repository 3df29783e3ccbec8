"""Watching deadlines: decides when the safety team must hear that a concern is close to
72 hours without a response, and when one person's repeated contact needs a single point
of contact.

Each safer custody concern is due `respond_within_hours` after it was received (the IMAP
INTERNALDATE); the clock stops when a response reached the family (an approved draft
that SMTP accepted, one staff sent from the mailbox to the family, or a response by
phone recorded), and keeps running while an approved draft waits to be sent. When a
concern crosses a threshold in `warn_when_hours_left`, or breaches, the safety team gets
one email, never repeated: the alert is recorded with the concern (one row per concern
and threshold) in the same transaction as the email is queued. A concern first seen
already late gets the most severe alert it has crossed at once, and the milder ones are
marked as passed.
Concerns crossing together share one digest, sorted by time left.

`decide` and `decide_persistent` choose, touching neither the database nor the outbox;
they return actions (`mailbot.replies.actions`) that `check` and the respond stage apply
in the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from mailbot.casework.audit import record_event
from mailbot.config import Config
from mailbot.db.models import Contact, ContactAlert, utcnow
from mailbot.parsers.contact import ContactStatus
from mailbot.replies import versions
from mailbot.replies.actions import Action, Digest, Notice, Passed, Persistent, apply
from mailbot.replies.consent import ConsentError, contact_key
from mailbot.replies.drafts import state_of
from mailbot.replies.outbox import Kind
from mailbot.replies.policy import LiveTemplates, render_alert
from mailbot.replies.render import format_london_time


class AlertKind(StrEnum):
    """What a contact was alerted for (ContactAlert.kind), each at most once."""

    BREACH = "breach"
    PERSISTENT = "persistent"


BREACH, PERSISTENT = AlertKind.BREACH, AlertKind.PERSISTENT
PERSISTENT_FLAG = "persistent_contact"
CLOSED = ContactStatus.CLOSED


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
    actions = decide(contacts, config, now, live=versions.live(session))
    apply(session, config, actions)
    return [
        crossing
        for action in actions
        if isinstance(action, Digest)
        for crossing in action.crossings
    ]


def decide(contacts: list[Contact], config: Config, now: datetime,
           live: LiveTemplates | None = None) -> list[Action]:
    """Pure: for these concerns at `now`, the milder thresholds to mark as passed, then
    at most two digests to the safety team (warnings, then breaches), each sorted by time
    left."""
    crossings, passed = due_alerts(contacts, config, now)
    actions: list[Action] = [Passed(contact, kind, now) for contact, kind in passed]
    for group in (
        [c for c in crossings if c.kind != BREACH],
        [c for c in crossings if c.kind == BREACH],
    ):
        if group:
            actions.append(digest(config, sorted(group, key=lambda c: c.hours_left), now,
                                  live))
    return actions


def digest(config: Config, crossings: list[Crossing], now: datetime,
           live: LiveTemplates | None = None) -> Digest:
    """The one email that lists concerns crossing a threshold together, in the words of
    `templates/alerts/deadline_digest`."""
    breach = crossings[0].kind == BREACH
    rendered = render_alert(
        "deadline_digest",
        {
            "breach": breach,
            "count": len(crossings),
            "hours": config.deadlines.respond_within_hours,
            "include_text": config.alerts.include_text,
            "entries": [_digest_entry(crossing, config) for crossing in crossings],
        },
        override_dir=config.replies.override_dir, live=live,
    )
    return Digest(
        kind=Kind.DEADLINE_BREACH if breach else Kind.DEADLINE_WARNING,
        to=tuple(config.alerts.safety_team),
        subject=rendered.subject,
        text=rendered.text,
        crossings=tuple(crossings),
        at=now,
    )


def _digest_entry(crossing: Crossing, config: Config) -> dict[str, str]:
    contact = crossing.contact
    left = crossing.hours_left
    drafts = [d for d in contact.drafts if d.status == "draft"]
    approved = [d for d in contact.drafts if d.status == "approved"]  # not yet sent
    return {
        "reference": contact.reference,
        "received": format_london_time(contact.received_at),
        "when": f"{left:.1f} hours left" if left > 0 else f"overdue by {-left:.1f} hours",
        "urgency": contact.urgency,
        "holder": (
            f"draft {approved[0].id} ({approved[0].template}) {state_of(approved[0])}"
            if approved
            else f"draft {drafts[0].id} ({drafts[0].template}) awaiting approval"
            if drafts
            else "no open draft"
        ),
        # The family's words reach the template only when staff alerts may show them.
        "concern_text": (
            " ".join(contact.concern_text.split())[:300] if config.alerts.include_text else ""
        ),
    }


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


@dataclass(frozen=True)
class PersistentFacts:
    """What the database says about one person's contact about one prisoner: how many
    in the window up to this one, and whether staff were told in the last window."""

    person_key: str
    count: int
    already_notified: bool


def persistent_facts(
    session: Session, config: Config, contact: Contact
) -> PersistentFacts | None:
    """Read what `decide_persistent` needs; None when the contact names no person or no
    prisoner, so it cannot be persistent."""
    key = person_key(contact)
    if key is None or not contact.prisoner_number:
        return None
    settings = config.deadlines
    since = contact.received_at - timedelta(days=settings.persistent_window_days)
    count = _earlier_contacts(session, contact, key, since)
    if count < settings.persistent_threshold:
        return PersistentFacts(key, count, already_notified=False)
    window_start = utcnow() - timedelta(days=settings.persistent_window_days)
    already = session.scalar(
        select(func.count())
        .select_from(ContactAlert)
        .where(ContactAlert.kind == PERSISTENT)
        .where(ContactAlert.person_key == f"{key}|{contact.prisoner_number}")
        .where(ContactAlert.created_at >= window_start)
    )
    return PersistentFacts(key, count, already_notified=bool(already))


def decide_persistent(
    config: Config, contact: Contact, facts: PersistentFacts | None,
    live: LiveTemplates | None = None,
) -> list[Action]:
    """Pure: a contact that is the `persistent_threshold`-th or later from the same person
    about the same prisoner within the window is flagged; staff are told once per person
    per window (`[alerts] persistent`, else the safety team)."""
    settings = config.deadlines
    if facts is None or facts.count < settings.persistent_threshold:
        return []
    notice = None
    if not facts.already_notified:
        rendered = render_alert(
            "persistent_contact",
            {"count": facts.count, "window_days": settings.persistent_window_days,
             "reference": contact.reference},
            override_dir=config.replies.override_dir, live=live,
        )
        notice = Notice(
            kind=Kind.PERSISTENT_CONTACT,
            to=tuple(config.alerts.persistent or config.alerts.safety_team),
            subject=rendered.subject,
            text=rendered.text,
            contact=contact,
        )
    return [
        Persistent(
            contact=contact, count=facts.count, flag=PERSISTENT_FLAG, alert_kind=PERSISTENT,
            person_key=f"{facts.person_key}|{contact.prisoner_number}", notice=notice,
        )
    ]


def note_persistent_contact(session: Session, config: Config, contact: Contact) -> bool:
    """Flag a contact that is the `persistent_threshold`-th or later from the same person
    about the same prisoner within the window; notify once per person per window.
    True when the contact is persistent."""
    actions = decide_persistent(config, contact, persistent_facts(session, config, contact),
                                versions.live(session))
    apply(session, config, actions)
    return bool(actions)


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
        contact.status = ContactStatus.RESPONDED
    for draft in contact.drafts:
        # An open draft, or an approved one the mail server refused, is now done with.
        refused = draft.status == "approved" and draft.email is not None and (
            draft.email.status in ("failed", "suppressed"))
        if draft.status == "draft" or refused:
            draft.status, draft.decided_by, draft.decided_at = "superseded", by, now
    record_event(session, actor=by, action="response_recorded", contact_id=contact.id,
                 detail={"method": method, "note": note})

