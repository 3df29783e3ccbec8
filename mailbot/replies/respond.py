"""The respond stage: decides which emails a newly logged contact causes, if any.

- A contact triaged `immediate` (threat to life) alerts `[alerts] urgent` and
  `[alerts] safety_team` at once, whatever else is true of it; so does one written in a
  language mailbot has no rules for ("could not be assessed").
- A verified portal form that triage accounted for sentence by sentence as a routine
  enquiry in English gets the toolkit's signposting reply, sent to the family's address
  from the portal, at most once a day per address; a long one (over
  `signpost_max_words`) waits for a person instead.
- Every other contact gets a draft for staff to approve (`mailbot.replies.drafts`): an
  acknowledgement for a safer custody concern, the signposting reply for an enquiry.
- Nothing else is sent automatically: safety concerns wait for a person, and an
  unverified look-alike, a direct email, a reply to us or anything from our own address
  never causes an email to an address taken from it.

Emails are only queued here, in the same transaction as the log entry, so a crash can
never keep the entry and lose its alert; `mailbot.replies.outbox` sends them.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.casework.deadlines import note_persistent_contact
from mailbot.config import Config
from mailbot.db.models import Contact, OutboxEmail, utcnow
from mailbot.ingest.examine import Examined
from mailbot.logs import event
from mailbot.parsers.contact import Flag
from mailbot.replies import ENQUIRY_CATEGORIES, render_signposting, render_urgent_alert
from mailbot.replies.drafts import create_draft
from mailbot.replies.outbox import Kind, Status, enqueue, family_address

log = logging.getLogger(__name__)

URGENT = "immediate"


def alert_recipients(config: Config) -> list[str]:
    seen: dict[str, None] = {}
    for address in (*config.alerts.urgent, *config.alerts.safety_team):
        seen.setdefault(address.lower(), None)
    return list(seen)


def respond(session: Session, config: Config, contact: Contact, examined: Examined) -> None:
    # A text in a language mailbot has no rules for cannot be assessed: the safety team
    # hears of it at once rather than from the 72-hour warnings.
    unassessed = examined.triage is not None and not examined.triage.assessed
    if contact.urgency == URGENT or unassessed:
        _alert_urgent(session, config, contact)
    if _may_signpost(config, contact, examined):
        _signpost(session, config, contact, examined)
    else:
        create_draft(session, config, contact)
    note_persistent_contact(session, config, contact)


def _alert_urgent(session: Session, config: Config, contact: Contact) -> None:
    event(log, logging.WARNING, "urgent_contact", reference=contact.reference,
          source=contact.source, verified=contact.verified,
          reasons=len(contact.triage_reasons))
    recipients = alert_recipients(config)
    if not recipients:
        event(log, logging.ERROR, "urgent_alert_has_no_recipients",
              reference=contact.reference, fix="set [alerts] urgent or safety_team")
        return
    rendered = render_urgent_alert(
        reference=contact.reference,
        received_at=contact.received_at,
        urgency=contact.urgency,
        reasons=(
            list(contact.triage_reasons)
            if config.alerts.include_text
            else [without_quotes(reason) for reason in contact.triage_reasons]
        ),
        source=contact.source,
        verified=contact.verified,
        include_text=config.alerts.include_text,
        concern_text=contact.concern_text,
        prisoner_number=contact.prisoner_number,
        prison=config.prison,
        override_dir=config.replies.override_dir,
    )
    for recipient in recipients:
        email = enqueue(
            session, config, kind=Kind.URGENT_ALERT, to=recipient, subject=rendered.subject,
            text=rendered.text, html=rendered.html, reference=contact.reference,
            auto_submitted="auto-generated",
        )
        email.contact = contact


_QUOTED = re.compile(r':?\s*"[^"]*"(?:\s*\+\s*"[^"]*")*')


def without_quotes(reason: str) -> str:
    """A triage reason without the family's own words it quotes: the rule stays, so
    staff still see why (`suicide_self_harm (immediate, rule plan_to_die)`)."""
    return " ".join(_QUOTED.sub("", reason).split())


def _may_signpost(config: Config, contact: Contact, examined: Examined) -> bool:
    """Positive evidence only: triage accounted for every sentence as a routine enquiry
    in English (`TriageResult.routine`); any doubt makes the reply a draft for staff."""
    return (
        config.replies.send_signposting
        and examined.triage is not None
        and examined.triage.routine
        and not contact.is_safer_custody
        and contact.source == "portal_form"
        and examined.verified
        and Flag.FROM_OUR_DOMAIN not in contact.flags
        and Flag.NEEDS_REVIEW not in contact.flags
        and len(contact.concern_text.split()) <= config.replies.signpost_max_words
    )


def _signpost(session: Session, config: Config, contact: Contact, examined: Examined) -> None:
    category = next((c for c in contact.categories if c in ENQUIRY_CATEGORIES), "other")
    # Reply-To from a verified form is the family's own address; else the form's field.
    recipient = family_address(config, examined.reply_to, contact.submitter_email)
    if recipient is None:
        event(log, logging.WARNING, "signposting_not_sent", reference=contact.reference,
              why="no single valid address on the form")
        return
    rendered = render_signposting(
        category=category, reference=contact.reference, prison=config.prison,
        override_dir=config.replies.override_dir,
    )
    in_reply_to = f"<{examined.message_id}>" if examined.message_id else None
    email = enqueue(
        session, config, kind=Kind.SIGNPOSTING, to=recipient, subject=rendered.subject,
        text=rendered.text, html=rendered.html, reference=contact.reference,
        in_reply_to=in_reply_to, auto_submitted="auto-replied", rate_limited=True,
    )
    email.contact = contact
    event(log, logging.INFO, "signposting_queued", reference=contact.reference,
          category=category, status=email.status)


def link_bounce(session: Session, examined: Examined) -> list[OutboxEmail]:
    """A bounce of one of our emails marks that email failed, linked by the bounced
    Message-ID, else by a failed recipient we sent to in the last week."""
    rows: list[OutboxEmail] = []
    if examined.original_message_id:
        bare = examined.original_message_id.strip().strip("<>")
        rows = list(
            session.execute(
                select(OutboxEmail).where(OutboxEmail.message_id == f"<{bare}>")
            ).scalars()
        )
    if not rows and examined.bounced_recipients:
        since = utcnow() - timedelta(days=7)
        rows = list(
            session.execute(
                select(OutboxEmail)
                .where(OutboxEmail.recipient.in_(examined.bounced_recipients))
                .where(OutboxEmail.status == Status.SENT)
                .where(OutboxEmail.sent_at >= since)
                .order_by(OutboxEmail.sent_at.desc())
                .limit(1)
            ).scalars()
        )
    for row in rows:
        row.status = Status.FAILED
        row.bounced_at = utcnow()
        row.last_error = "bounced: the receiving system reported a delivery failure"
        event(log, logging.WARNING, "email_bounced", outbox=row.id, kind=row.kind)
    return rows



def alert_template_problems(session: Session, config: Config, problems: list[str]) -> None:
    """An edited template that breaks its policy is not used (the last good one is):
    tell the safety team, in words that need no template to render."""
    event(log, logging.ERROR, "templates_rejected", count=len(problems))
    text = (
        "mailbot refused to use an edited reply template, because it fails its policy "
        "check. It keeps using the last version that passed until the file is fixed.\n\n"
        + "\n".join(f"- {problem}" for problem in problems)
        + "\n\nRun `mailbot templates check` after editing to see what is wrong.\n"
    )
    for recipient in config.alerts.safety_team:
        enqueue(session, config, kind="template_alert", to=recipient,
                subject="mailbot: an edited reply template was refused", text=text,
                auto_submitted="auto-generated")
