"""What mailbot does once a stage has decided: the actions the respond stage and the
deadline check return, and `apply`, which carries them out inside the caller's
transaction (queueing emails, writing drafts, recording alerts).

The deciding functions (`respond.decide`, `deadlines.decide`, `deadlines.decide_persistent`)
never touch the database or the outbox; they return a list of these values, so every
decision is tested without a database, and this module is the one place that writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from mailbot.casework.audit import MAILBOT, record_event
from mailbot.config import Config
from mailbot.db.models import Contact, ContactAlert, utcnow
from mailbot.logs import event
from mailbot.replies import versions
from mailbot.replies.drafts import create_draft
from mailbot.replies.outbox import Kind, enqueue
from mailbot.replies.render import render_signposting, render_urgent_alert

if TYPE_CHECKING:
    from mailbot.casework.deadlines import Crossing
    from mailbot.replies.consent import ConsentState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """The urgent alert: `contact` goes at once to `to` (`[alerts] urgent` and
    `safety_team`); `reasons` are the triage reasons as the alert may show them."""

    contact: Contact
    to: tuple[str, ...]
    reasons: tuple[str, ...]
    include_text: bool
    template: str = "urgent"


@dataclass(frozen=True)
class Reply:
    """An automatic reply to the family: the signposting reply for `category`, to `to`
    (None: the form gave no single valid address, so nothing is sent)."""

    contact: Contact
    to: str | None
    category: str
    in_reply_to: str | None
    template: str = "signposting"


@dataclass(frozen=True)
class Draft:
    """A reply for staff to approve, written from `template` under `consent`."""

    contact: Contact
    template: str
    consent: ConsentState


@dataclass(frozen=True)
class JoinConcern:
    """A family's reply to a concern: it joins that concern instead of a new draft."""

    contact: Contact


@dataclass(frozen=True)
class Notice:
    """A plain email to staff (`kind` names it in the outbox), one per address in `to`."""

    kind: str
    to: tuple[str, ...]
    subject: str
    text: str
    contact: Contact | None = None


@dataclass(frozen=True)
class Persistent:
    """`contact` is the `count`-th from one person about one prisoner: flag it, and when
    `notice` is set, tell staff and record that they were told (`alert_kind`, `person_key`)."""

    contact: Contact
    count: int
    flag: str
    alert_kind: str
    person_key: str
    notice: Notice | None


@dataclass(frozen=True)
class Digest:
    """One deadline email listing the `crossings`; each is recorded as alerted, linked to
    the email, so it is never repeated."""

    kind: str  # "deadline_warning" | "deadline_breach"
    to: tuple[str, ...]
    subject: str
    text: str
    crossings: tuple[Crossing, ...]
    at: datetime


@dataclass(frozen=True)
class Passed:
    """A milder deadline threshold a concern crossed unseen: recorded, never sent."""

    contact: Contact
    kind: str
    at: datetime


Action = Alert | Reply | Draft | JoinConcern | Notice | Persistent | Digest | Passed


def apply(session: Session, config: Config, actions: Iterable[Action]) -> None:
    """Carry out decided actions in order, in the caller's transaction."""
    for action in actions:
        match action:
            case Alert():
                _urgent_alert(session, config, action)
            case Reply():
                _reply(session, config, action)
            case Draft():
                create_draft(session, config, action.contact, state=action.consent)
            case JoinConcern():
                record_event(session, actor=MAILBOT, action="reply_added_to_concern",
                             contact_id=action.contact.related_contact_id,
                             detail={"reference": action.contact.reference})
            case Notice():
                _notice(session, config, action)
            case Persistent():
                _persistent(session, config, action)
            case Digest():
                _digest(session, config, action)
            case Passed():
                session.add(ContactAlert(contact=action.contact, kind=action.kind,
                                         created_at=action.at, sent=False))


def _urgent_alert(session: Session, config: Config, alert: Alert) -> list[object]:
    contact = alert.contact
    event(log, logging.WARNING, "urgent_contact", reference=contact.reference,
          source=contact.source, verified=contact.verified,
          reasons=len(contact.triage_reasons))
    if not alert.to:
        event(log, logging.ERROR, "urgent_alert_has_no_recipients",
              reference=contact.reference, fix="set [alerts] urgent or safety_team")
        return []
    rendered = render_urgent_alert(
        reference=contact.reference,
        received_at=contact.received_at,
        urgency=contact.urgency,
        reasons=list(alert.reasons),
        source=contact.source,
        verified=contact.verified,
        include_text=alert.include_text,
        concern_text=contact.concern_text,
        prisoner_number=contact.prisoner_number,
        prison=config.prison,
        override_dir=config.replies.override_dir,
        live=versions.live(session),
    )
    emails = []
    for recipient in alert.to:
        email = enqueue(
            session, config, kind=Kind.URGENT_ALERT, to=recipient, subject=rendered.subject,
            text=rendered.text, html=rendered.html, reference=contact.reference,
            auto_submitted="auto-generated",
        )
        email.contact = contact
        emails.append(email)
    return emails


def _reply(session: Session, config: Config, reply: Reply) -> list[object]:
    contact = reply.contact
    if reply.to is None:
        event(log, logging.WARNING, "signposting_not_sent", reference=contact.reference,
              why="no single valid address on the form")
        return []
    rendered = render_signposting(
        category=reply.category, reference=contact.reference, prison=config.prison,
        override_dir=config.replies.override_dir, live=versions.live(session),
    )
    email = enqueue(
        session, config, kind=Kind.SIGNPOSTING, to=reply.to, subject=rendered.subject,
        text=rendered.text, html=rendered.html, reference=contact.reference,
        in_reply_to=reply.in_reply_to, auto_submitted="auto-replied", rate_limited=True,
    )
    email.contact = contact
    event(log, logging.INFO, "signposting_queued", reference=contact.reference,
          category=reply.category, status=email.status)
    return [email]


def _notice(session: Session, config: Config, notice: Notice) -> list[object]:
    emails = []
    reference = notice.contact.reference if notice.contact is not None else None
    for recipient in notice.to:
        email = enqueue(session, config, kind=notice.kind, to=recipient,
                        subject=notice.subject, text=notice.text, reference=reference,
                        auto_submitted="auto-generated")
        if notice.contact is not None:
            email.contact = notice.contact
        emails.append(email)
    return emails


def _persistent(session: Session, config: Config, persistent: Persistent) -> list[object]:
    contact = persistent.contact
    if persistent.flag not in contact.flags:
        contact.flags = [*contact.flags, persistent.flag]
    if persistent.notice is None:
        return []
    emails = _notice(session, config, persistent.notice)
    session.add(ContactAlert(contact=contact, kind=persistent.alert_kind,
                             person_key=persistent.person_key, created_at=utcnow(),
                             sent=bool(persistent.notice.to)))
    event(log, logging.INFO, "persistent_contact", reference=contact.reference,
          count=persistent.count)
    return emails


def _digest(session: Session, config: Config, digest: Digest) -> list[object]:
    breach = digest.kind == "deadline_breach"
    count = len(digest.crossings)
    if not digest.to:
        event(log, logging.ERROR, "deadline_alert_has_no_recipients", concerns=count,
              fix="set [alerts] safety_team")
    emails = [
        enqueue(session, config, kind=digest.kind, to=recipient, subject=digest.subject,
                text=digest.text, auto_submitted="auto-generated")
        for recipient in digest.to
    ]
    session.flush()
    for crossing in digest.crossings:
        session.add(
            ContactAlert(
                contact=crossing.contact, kind=crossing.kind, created_at=digest.at,
                sent=True, outbox_id=emails[0].id if emails else None,
            )
        )
    event(log, logging.WARNING if breach else logging.INFO,
          "deadline_breach" if breach else "deadline_warning", concerns=count,
          references=",".join(c.contact.reference for c in digest.crossings))
    return list(emails)
