"""Drafts: decides which acknowledgement a safer custody concern gets, and guards its
approval, so that nothing a family receives about a prisoner goes out without a person.

A draft is written as soon as a contact is logged that mailbot does not answer itself,
from the template its consent allows: restricted contact -> `ack_restricted`; an enquiry
that is not about safety -> `signposting`; a form that failed verification ->
`ack_unverified`; a verified form whose contact has the prisoner's consent ->
`ack_consent`; anything else -> `ack_no_consent`. Approval checks again at that moment:
consent may have been withdrawn, and a draft that would now say more than is allowed is
refused and must be redrafted; so is an empty edit, or one with `[[STAFF: ...]]` places
left. The same checks decide whether an email staff sent from the mailbox itself counts
as the response (mailbot/mailbox/mail_client.py). Every event goes to the audit trail.

"Responded" means a response reached the family: an approved draft is only queued, and
the concern counts as answered (the 72-hour clock stops) when SMTP accepted the email
(`settle_sent`); until then it shows "approved, not yet sent".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.casework.audit import MAILBOT, record_event
from mailbot.config import Config
from mailbot.db.models import Contact, Draft, OutboxEmail, utcnow
from mailbot.errors import RefusedError, describe
from mailbot.logs import event
from mailbot.parsers.contact import ContactStatus
from mailbot.replies import consent, versions
from mailbot.replies.outbox import Kind, enqueue, family_address, new_message_id
from mailbot.replies.policy import render_acknowledgement, unfilled_markers
from mailbot.replies.render import format_london_time
from mailbot.triage import ENQUIRY_CATEGORIES

log = logging.getLogger(__name__)


class Status(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"  # queued in the outbox
    SENT = "sent"
    SENT_BY_STAFF = "sent_by_staff"  # sent from a mail client; found in the Sent folder
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


SIGNPOSTING = "signposting"
NO_CONSENT = "ack_no_consent"
CONSENT = "ack_consent"
RESTRICTED = "ack_restricted"
UNVERIFIED = "ack_unverified"
# How much each template may disclose; approval refuses a draft that says more than the
# template that fits now would.
DISCLOSURE = {RESTRICTED: 0, UNVERIFIED: 0, SIGNPOSTING: 0, NO_CONSENT: 1, CONSENT: 2}
IDENTIFYING_ALLOWED = {CONSENT}


class DraftError(RefusedError, ValueError):
    """An approval, rejection or redraft that must not happen; says why and what to do."""


def choose_template(contact: Contact, state: consent.ConsentState) -> str:
    if state.restricted:
        return RESTRICTED
    if not contact.is_safer_custody:
        # An enquiry mailbot could not answer itself (unverified sender, direct email):
        # staff approve the same signposting reply it would have sent.
        return SIGNPOSTING
    if contact.source == "portal_form" and not contact.verified:
        return UNVERIFIED
    if contact.source == "portal_form" and state.scope in ("full", "wellbeing"):
        return CONSENT
    return NO_CONSENT


def template_context(contact: Contact, config: Config, scope: str) -> dict[str, Any]:
    """Everything a template might use; the policy hands each template only its own."""
    return {
        "category": next(
            (c for c in contact.categories if c in ENQUIRY_CATEGORIES), "other"
        ),
        "reference": contact.reference,
        "prison": config.prison,
        "submitter_name": contact.submitter_name,
        "received_at": format_london_time(contact.received_at),
        "consent_scope": scope,
        "prisoner_name": contact.prisoner_name,
        "prisoner_number": contact.prisoner_number,
        "prisoner_location": contact.location,
        "prisoner_dob": contact.prisoner_dob_as_typed,
        "establishment": contact.establishment,
    }


def create_draft(
    session: Session,
    config: Config,
    contact: Contact,
    *,
    actor: str = MAILBOT,
    state: consent.ConsentState | None = None,
) -> Draft | None:
    """Draft the reply to a newly logged contact that mailbot does not answer itself
    (`state`: the consent in force, when the caller has already read it)."""
    if contact.related_contact_id is not None:
        # A family's reply joins its existing concern rather than starting a new pile.
        record_event(session, actor=actor, action="reply_added_to_concern",
                     contact_id=contact.related_contact_id,
                     detail={"reference": contact.reference})
        return None
    if state is None:
        state = consent.for_contact(session, contact)
    template = choose_template(contact, state)
    rendered = render_acknowledgement(
        template, template_context(contact, config, state.scope),
        override_dir=config.replies.override_dir, live=versions.live(session),
    )
    draft = Draft(
        contact=contact,
        template=template,
        consent_scope=state.scope,
        status=Status.DRAFT,
        recipient=family_address(config, contact.submitter_email) or "",
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        message_id=new_message_id(config, contact.reference),
        created_at=utcnow(),
    )
    session.add(draft)
    record_event(session, actor=actor, action="draft_created", contact=contact, draft=draft,
                 detail={"template": template, "consent": state.scope})
    event(log, logging.INFO, "draft_created", reference=contact.reference, template=template)
    return draft


@dataclass
class Approval:
    draft: Draft
    email: OutboxEmail


def approve(
    session: Session,
    config: Config,
    draft_id: int,
    *,
    by: str,
    edited_text: str | None = None,
) -> Approval:
    """Queue the draft (or the member of staff's edit of it) for sending. The concern is
    not yet answered: `settle_sent` says so once SMTP has accepted the email."""
    draft = _open_draft(session, draft_id)
    contact = draft.contact
    _require_name(by)
    if edited_text is not None and not edited_text.strip():
        raise DraftError(
            f"the edit for draft {draft.id} is empty, so nothing would reach the family: "
            f"write the reply in the file, or approve without --edit to send the draft "
            f"as it is (mailbot drafts show {draft.id})"
        )
    text = draft.body_text if edited_text is None else edited_text
    markers = unfilled_markers(text)
    if markers and edited_text is not None and markers == unfilled_markers(draft.body_text):
        raise DraftError(
            f"the edit for draft {draft.id} leaves its places for staff as they were: "
            + "; ".join(markers) + ". Write what goes there, or delete the place"
        )
    if markers:
        raise DraftError(
            f"draft {draft.id} still has places for staff to fill in or delete: "
            + "; ".join(markers)
        )
    refusal = consent_refusal(session, contact, draft, text)
    if refusal:
        raise DraftError(refusal)
    if not draft.recipient:
        raise DraftError(
            f"draft {draft.id} has no single valid address to send to; reply by phone and "
            f"record it: mailbot concerns respond {contact.reference} --by NAME --method phone"
        )
    if edited_text is not None and edited_text != draft.body_text:
        draft.body_text, draft.body_html = edited_text, None
        record_event(session, actor=by, action="draft_edited", contact_id=contact.id,
                     draft_id=draft.id)
    email = enqueue(
        session, config, kind=Kind.ACKNOWLEDGEMENT, to=draft.recipient, subject=draft.subject,
        text=draft.body_text, html=draft.body_html, reference=contact.reference,
        in_reply_to=_angle(contact.message.message_id), auto_submitted="no",
    )
    email.contact = contact
    session.flush()
    draft.status, draft.decided_by, draft.decided_at = Status.APPROVED, by, utcnow()
    draft.outbox_id = email.id
    record_event(session, actor=by, action="draft_approved", contact_id=contact.id,
                 draft_id=draft.id, detail={"outbox": email.id, "template": draft.template})
    return Approval(draft, email)


def consent_refusal(
    session: Session, contact: Contact, draft: Draft | None, text: str
) -> str | None:
    """Why TEXT may not go to this contact's family under the consent in force now, or
    None. `draft` is the draft it was written from, when there is one: a draft written
    under consent since withdrawn must be redrafted. The command line's approval and the
    Sent folder's check (a reply sent from Outlook) both ask this."""
    state = consent.for_contact(session, contact)
    fits_now = choose_template(contact, state)
    if draft is not None and DISCLOSURE[draft.template] > DISCLOSURE[fits_now]:
        return (
            f"draft {draft.id} was written with consent '{draft.consent_scope}' "
            f"({draft.template}); what is in force now is '{state.scope}', which allows "
            f"only {fits_now}. Redraft it: mailbot drafts redraft {draft.id} --by NAME"
        )
    if fits_now not in IDENTIFYING_ALLOWED:
        named = _identifying_words_in(text, contact)
        if named:
            what = f"draft {draft.id}" if draft is not None else "the text"
            return (
                f"{what} would name or locate the prisoner ({', '.join(named)}), "
                f"which {fits_now} may not: remove it, or record consent first"
            )
    return None


def reject(session: Session, draft_id: int, *, by: str, reason: str) -> Draft:
    draft = _open_draft(session, draft_id)
    _require_name(by)
    if not reason.strip():
        raise DraftError("--reason must say why the draft is rejected")
    draft.status, draft.decided_by, draft.decided_at = Status.REJECTED, by, utcnow()
    draft.reject_reason = reason
    record_event(session, actor=by, action="draft_rejected", contact_id=draft.contact_id,
                 draft_id=draft.id, detail={"reason": reason})
    return draft


def redraft(session: Session, config: Config, draft_id: int, *, by: str) -> Draft:
    """Replace an open draft with one written for the consent in force now."""
    old = _open_draft(session, draft_id)
    _require_name(by)
    if old.contact.related_contact_id is not None:
        raise DraftError(f"draft {draft_id} belongs to a reply joined to another concern; "
                         "redraft that concern's draft instead")
    old.status, old.decided_by, old.decided_at = Status.SUPERSEDED, by, utcnow()
    record_event(session, actor=by, action="draft_superseded", contact_id=old.contact_id,
                 draft_id=old.id)
    new = create_draft(session, config, old.contact, actor=by)
    if new is None:  # create_draft declines only for joined replies, refused above
        raise DraftError(f"no new draft could be written for draft {draft_id}")
    return new


def settle_sent(session: Session) -> int:
    """Approved drafts whose email SMTP has accepted are marked sent, and their concern
    answered at that moment, by the member of staff who approved it (with the audit
    event). The one place a command-line approval becomes the response."""
    rows = session.execute(
        select(Draft, OutboxEmail)
        .join(OutboxEmail, Draft.outbox_id == OutboxEmail.id)
        .where(Draft.status == Status.APPROVED)
        .where(OutboxEmail.status == "sent")
    ).all()
    for draft, email in rows:
        draft.status, draft.sent_text = Status.SENT, draft.body_text
        contact = draft.contact
        sent_at = email.sent_at or utcnow()
        if contact.responded_at is None or sent_at < contact.responded_at:
            contact.responded_at, contact.responded_by = sent_at, draft.decided_by
        if contact.status != ContactStatus.CLOSED:
            contact.status = ContactStatus.RESPONDED
        record_event(session, actor=MAILBOT, action="draft_sent", contact_id=draft.contact_id,
                     draft_id=draft.id, detail={"outbox": email.id,
                                                "message_id": email.message_id})
    return len(rows)


NOT_YET_SENT = "approved, not yet sent"
_STATES = {Status.DRAFT: "awaiting approval", Status.SENT_BY_STAFF: "sent from the mailbox"}


def state_of(draft: Draft) -> str:
    """Where a draft stands, as staff read it: an approved draft is "approved, not yet
    sent" until SMTP has accepted it (and says so when the server refused it)."""
    if draft.status != Status.APPROVED:
        return _STATES.get(draft.status, str(draft.status))
    email = draft.email
    if email is not None and email.status in ("failed", "suppressed"):
        return f"approved, not sent: {email.last_error or email.status}"[:300]
    return NOT_YET_SENT


def pending(session: Session) -> list[Draft]:
    """Drafts that need staff or are on their way: open, or approved and not yet sent."""
    return list(
        session.execute(
            select(Draft).where(Draft.status.in_((Status.DRAFT, Status.APPROVED)))
            .order_by(Draft.id)
        ).scalars()
    )


def open_drafts(session: Session) -> list[Draft]:
    return list(
        session.execute(
            select(Draft).where(Draft.status == Status.DRAFT).order_by(Draft.id)
        ).scalars()
    )


def _open_draft(session: Session, draft_id: int) -> Draft:
    draft = session.get(Draft, draft_id)
    if draft is None:
        raise DraftError(f"no draft {draft_id}")
    if draft.status != Status.DRAFT:
        raise DraftError(f"draft {draft_id} is {draft.status}, not open for a decision")
    return draft


def _require_name(by: str) -> None:
    if not by.strip():
        raise DraftError("--by must name the member of staff")


def _identifying_words_in(text: str, contact: Contact) -> list[str]:
    found = []
    folded = " ".join(text.lower().split())
    compact = re.sub(r"\s", "", folded)
    if contact.prisoner_number and contact.prisoner_number.lower() in compact:
        found.append("prisoner number")
    name = " ".join(contact.prisoner_name.lower().split())
    # The full name only: families often share the prisoner's surname.
    if name and " " in name and name in folded:
        found.append("prisoner name")
    location = " ".join(contact.location.lower().split())
    if location and len(location) > 2 and location in folded:
        found.append("location")
    return found


def _angle(message_id: str | None) -> str | None:
    return f"<{message_id}>" if message_id else None


def send_approved(config: Config, sessions: Any, email_id: int,
                  open_mailbox: Any) -> tuple[str | None, str | None]:
    """Try to send an approved draft's email now, then settle what went; returns the
    email's (status, last_error). The approval stands, queued, whatever stops it now."""
    from mailbot.replies.outbox import send_due  # outbox imports nothing of drafts

    try:
        send_due(config, sessions, open_mailbox)
    except Exception as exc:  # noqa: BLE001 - said as "queued"; the daemon retries
        event(log, logging.WARNING, "approval_not_sent_now", outbox=email_id,
              error=describe(exc))
    with sessions() as session:
        settle_sent(session)
        session.commit()
        email = session.get(OutboxEmail, email_id)
        return (email.status, email.last_error) if email else (None, None)
