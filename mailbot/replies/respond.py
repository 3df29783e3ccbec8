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

`decide` chooses, touching neither the database nor the outbox, and returns the actions
(`mailbot.replies.actions`); `respond` reads the facts it needs and applies them. Emails
are only queued, in the same transaction as the log entry, so a crash can never keep the
entry and lose its alert; `mailbot.replies.outbox` sends them.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.casework.deadlines import decide_persistent, persistent_facts
from mailbot.config import Config
from mailbot.db.models import Contact, OutboxEmail, utcnow
from mailbot.ingest.examine import Examined
from mailbot.logs import event
from mailbot.parsers.contact import Flag
from mailbot.replies import ENQUIRY_CATEGORIES, consent, versions
from mailbot.replies.actions import Action, Alert, Draft, JoinConcern, Notice, Reply, apply
from mailbot.replies.drafts import choose_template
from mailbot.replies.outbox import Kind, Status, family_address

log = logging.getLogger(__name__)

URGENT = "immediate"
NO_CONSENT = consent.ConsentState("none", None)


def alert_recipients(config: Config) -> list[str]:
    seen: dict[str, None] = {}
    for address in (*config.alerts.urgent, *config.alerts.safety_team):
        seen.setdefault(address.lower(), None)
    return list(seen)


def respond(session: Session, config: Config, contact: Contact, examined: Examined) -> None:
    """Read what the decision needs (consent in force, earlier contacts from the same
    person), decide, and apply the actions in this transaction."""
    state = (
        consent.for_contact(session, contact)
        if contact.related_contact_id is None
        else NO_CONSENT
    )
    actions = decide(config, contact, examined, consent_state=state)
    actions += decide_persistent(config, contact, persistent_facts(session, config, contact),
                                 versions.live(session))
    apply(session, config, actions)


def decide(
    config: Config,
    contact: Contact,
    examined: Examined,
    *,
    consent_state: consent.ConsentState = NO_CONSENT,
) -> list[Action]:
    """Pure: the alert, reply or draft a newly logged contact causes (see the module's
    docstring); `consent_state` is the consent in force for it, which picks the draft's
    template. A family's reply to an existing concern joins it instead of a new draft."""
    actions: list[Action] = []
    # A text in a language mailbot has no rules for cannot be assessed: the safety team
    # hears of it at once rather than from the 72-hour warnings.
    unassessed = examined.triage is not None and not examined.triage.assessed
    if contact.urgency == URGENT or unassessed:
        actions.append(urgent_alert(config, contact))
    if _may_signpost(config, contact, examined):
        actions.append(_signposting_reply(config, contact, examined))
    elif contact.related_contact_id is not None:
        actions.append(JoinConcern(contact))
    else:
        actions.append(
            Draft(contact, choose_template(contact, consent_state), consent_state)
        )
    return actions


def urgent_alert(config: Config, contact: Contact) -> Alert:
    return Alert(
        contact=contact,
        to=tuple(alert_recipients(config)),
        reasons=tuple(
            contact.triage_reasons
            if config.alerts.include_text
            else [without_quotes(reason) for reason in contact.triage_reasons]
        ),
        include_text=config.alerts.include_text,
    )


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


def _signposting_reply(config: Config, contact: Contact, examined: Examined) -> Reply:
    category = next((c for c in contact.categories if c in ENQUIRY_CATEGORIES), "other")
    return Reply(
        contact=contact,
        # Reply-To from a verified form is the family's own address; else the form's field.
        to=family_address(config, examined.reply_to, contact.submitter_email),
        category=category,
        in_reply_to=f"<{examined.message_id}>" if examined.message_id else None,
    )


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
    event(log, logging.ERROR, "templates_rejected", count=len(problems))
    apply(session, config, [template_problems_notice(config, problems)])


def template_problems_notice(config: Config, problems: list[str]) -> Notice:
    """An edited template that breaks its policy is not used (the last good one is):
    tell the safety team, in words that need no template to render."""
    text = (
        "mailbot refused to use an edited reply template, because it fails its policy "
        "check. It keeps using the last version that passed until the file is fixed.\n\n"
        + "\n".join(f"- {problem}" for problem in problems)
        + "\n\nRun `mailbot templates check` after editing to see what is wrong.\n"
    )
    return Notice(kind=Kind.TEMPLATE_ALERT, to=tuple(config.alerts.safety_team),
                  subject="mailbot: an edited reply template was refused", text=text)
