"""Approval from the mailbox itself: drafts placed in the Drafts folder for staff who
live in Outlook, and their sent copies found in the Sent folder.

It decides three things on each pass: which open drafts still need a copy in Drafts
(APPEND with `\\Draft`, our reference in the subject, once: looked up by Message-ID
first), which copies must go because the draft was decided in mailbot (approved,
rejected, superseded), and which messages in Sent are about a concern (our reference in
the subject, or In-Reply-To the family's message).

A message in Sent about a concern is the response only when it went to the family's
address on the concern, has no `[[STAFF: ...]]` places left, and passes the consent
check a command-line approval passes (`drafts.consent_refusal`). Then it is recorded
with the text as actually sent, as made by the officer who sent it (the Sender or From,
when it names a person), and the draft can no longer be approved a second time.
Anything else (a forward to healthcare, a reply with a place left unfilled) is recorded
as staff mail about the concern, with why it is not the response, shown by `concerns
show`; the 72-hour clock keeps running.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, sessionmaker

from mailbot.casework.audit import record_event
from mailbot.config import Config
from mailbot.db.models import Contact, Draft, MailboxState, OutboxEmail, StoredMessage, utcnow
from mailbot.devtools.failpoints import DRAFT_APPENDED, DRAFT_PLACED, DRAFT_SEARCHED, failpoint
from mailbot.logs import event
from mailbot.mailbox.fetch import Mailbox
from mailbot.parsers.contact import ContactStatus
from mailbot.parsers.mime import (
    POLICY,
    WIRE_POLICY,
    body_text,
    header_addresses,
    header_text,
    html_to_text,
    read_message,
)
from mailbot.replies.drafts import Status as DraftStatus
from mailbot.replies.drafts import consent_refusal
from mailbot.replies.outbox import family_address
from mailbot.replies.policy import unfilled_markers

log = logging.getLogger(__name__)

REFERENCE = re.compile(r"\[(SC-\d{4}-\d{5})\]")


def draft_message(config: Config, draft: Draft, in_reply_to: str | None) -> bytes:
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(addr_spec=config.smtp.from_address)
    if draft.recipient:
        msg["To"] = Address(addr_spec=draft.recipient)
    msg["Subject"] = draft.subject
    msg["Date"] = format_datetime(draft.created_at)
    msg["Message-ID"] = draft.message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(draft.body_text)
    if draft.body_html:
        msg.add_alternative(draft.body_html, subtype="html")
    return msg.as_bytes(policy=WIRE_POLICY)


def drafts_folder(config: Config, mailbox: Mailbox) -> str:
    """Where drafts go on this server: `[drafts] drafts_folder`, else its \\Drafts."""
    return mailbox.folder_for("drafts", config.drafts.drafts_folder)


def sync(config: Config, sessions: sessionmaker[Session], mailbox: Mailbox) -> None:
    drafts, sent = drafts_folder(config, mailbox), mailbox.sent_folder
    mailbox.ensure_folders(drafts, sent)
    # A commit after each step (and after each draft placed): what one step did is kept
    # if the mailbox or the database fails the next.
    with sessions() as session:
        _place_open_drafts(config, session, mailbox, drafts)
        _remove_decided_drafts(session, mailbox, drafts)
        session.commit()
        _record_staff_responses(config, session, mailbox, sent)
        session.commit()


# Drafts placed per pass: a backlog (after an outage, say) is spread over a few passes
# rather than holding up the next poll.
PLACED_PER_PASS = 100


def _place_open_drafts(config: Config, session: Session, mailbox: Mailbox,
                       folder: str) -> None:
    """Put a copy of each open draft in the Drafts folder, once.

    Idempotent whatever fails when: a draft's Message-ID is looked up in Drafts (a header
    search) before it is appended, so a copy appended by a pass that died before its
    commit is found rather than appended again; and each draft's `placed` is committed on
    its own, so a commit refused or lost costs at most that one draft's search."""
    # One query for the drafts, their contacts and the family's Message-ID, and not the
    # family's message itself (its bytes may be megabytes).
    drafts = session.execute(
        select(Draft, StoredMessage.message_id)
        .join(Draft.contact)
        .join(Contact.message)
        .options(contains_eager(Draft.contact))
        .where(Draft.status == DraftStatus.DRAFT)
        .where(Draft.mailbox_copy == "none")
        .order_by(Draft.id)
        .limit(PLACED_PER_PASS)
    ).all()
    for draft, original in drafts:
        if draft.status != DraftStatus.DRAFT:
            continue  # decided meanwhile (each commit below reads it afresh)
        draft_id, reference = draft.id, draft.contact.reference
        found = mailbox.uids_with_message_id(folder, draft.message_id)
        failpoint(DRAFT_SEARCHED)
        if not found:
            raw = draft_message(config, draft, f"<{original}>" if original else None)
            mailbox.append(raw, folder, flags=("\\Draft",))
            failpoint(DRAFT_APPENDED)
        draft.mailbox_copy = "placed"
        session.commit()
        failpoint(DRAFT_PLACED)
        event(log, logging.INFO, "draft_placed_in_mailbox", draft=draft_id,
              reference=reference, already_there=bool(found))


def _remove_decided_drafts(session: Session, mailbox: Mailbox, folder: str) -> None:
    drafts = session.execute(
        select(Draft).where(Draft.status != DraftStatus.DRAFT).where(Draft.mailbox_copy == "placed")
    ).scalars().all()
    for draft in drafts:
        uids = mailbox.uids_with_message_id(folder, draft.message_id)
        mailbox.delete(folder, uids)
        draft.mailbox_copy = "removed"
        event(log, logging.INFO, "draft_removed_from_mailbox", draft=draft.id,
              status=draft.status)


def _record_staff_responses(config: Config, session: Session, mailbox: Mailbox,
                            folder: str) -> None:
    state = session.get(MailboxState, folder) or MailboxState(folder=folder)
    uidvalidity, uids = mailbox.uids_after(folder, state.last_uid)
    if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
        uidvalidity, uids = mailbox.uids_after(folder, None)
    # Most of Sent is mailbot's own copies: read their Message-IDs first, and fetch whole
    # only the messages that are not.
    message_ids = {
        item.uid: header_text(read_message(item.raw), "Message-ID").strip()
        for item in mailbox.fetch_header_fields(uids, "MESSAGE-ID")
    }
    wanted = sorted(set(message_ids.values()) - {""})
    ours: set[str] = set()
    for start in range(0, len(wanted), 500):  # a first pass may read years of Sent
        ours.update(session.execute(
            select(OutboxEmail.message_id)
            .where(OutboxEmail.message_id.in_(wanted[start : start + 500]))
        ).scalars())
    for item in mailbox.fetch([uid for uid in uids if message_ids.get(uid) not in ours]):
        msg = read_message(item.raw)
        contact = _concern_answered(session, msg)
        if contact is None:
            continue
        sent = SentItem.read(config, msg, item.internal_date or _date(msg) or utcnow())
        reasons = not_the_response(session, config, contact, sent)
        if reasons:
            _record_staff_mail(session, contact, sent, reasons)
        else:
            _record_response(session, contact, sent)
    state.uidvalidity = uidvalidity
    if uids:
        state.last_uid = max(uids)
    session.add(state)


def _concern_answered(session: Session, msg: EmailMessage) -> Contact | None:
    match = REFERENCE.search(header_text(msg, "Subject"))
    if match:
        contact = session.execute(
            select(Contact).where(Contact.reference == match.group(1))
        ).scalar_one_or_none()
        if contact is not None:
            return contact
    for referenced in header_text(msg, "In-Reply-To").split():
        bare = referenced.strip("<>")
        contact = session.execute(
            select(Contact).join(StoredMessage).where(StoredMessage.message_id == bare)
        ).scalar_one_or_none()
        if contact is not None:
            return contact
    return None


# The audit trail's name for a message staff sent about a concern that is not its response.
STAFF_MAIL = "staff_mail_about_concern"
SHARED_MAILBOX = "Outlook (shared mailbox)"
# Words that name a mailbox or a team rather than a person, in a display name.
_NOT_A_PERSON = re.compile(r"safer\s*custody|mailbox|\bteam\b|no-?reply|\bhmp\b|prison",
                           re.IGNORECASE)


@dataclass(frozen=True)
class SentItem:
    """What the Sent folder's copy of a member of staff's email says."""

    message_id: str
    subject: str
    recipients: tuple[str, ...]  # To, Cc and Bcc addresses, lower-cased
    text: str
    officer: str  # who sent it: a person, else SHARED_MAILBOX
    sent_at: datetime

    @classmethod
    def read(cls, config: Config, msg: EmailMessage, sent_at: datetime) -> SentItem:
        body = body_text(msg)
        return cls(
            message_id=header_text(msg, "Message-ID").strip(),
            subject=header_text(msg, "Subject"),
            recipients=tuple(
                address.lower() for name in ("To", "Cc", "Bcc")
                for _, address in header_addresses(msg, name) if address
            ),
            text=body.plain if body.plain is not None else html_to_text(body.html or ""),
            officer=officer(config, msg),
            sent_at=sent_at,
        )


def officer(config: Config, msg: EmailMessage) -> str:
    """Who sent a message from the shared mailbox: the Sender (Outlook's "on behalf of"),
    else the From, when it names a person; else "Outlook (shared mailbox)". A person's
    own address names them; the shared address names them only by a display name that
    is not the mailbox's or a team's."""
    own = config.own_addresses
    for header in ("Sender", "From"):
        for display, address in header_addresses(msg, header):
            mine = address.lower() in own
            person = display and display.lower() != address.lower() and not (
                mine and _NOT_A_PERSON.search(display)
            )
            if person:
                return display[:200]
            if address and not mine:
                return address[:200]
    return SHARED_MAILBOX


def not_the_response(
    session: Session, config: Config, contact: Contact, sent: SentItem
) -> list[str]:
    """Why a message staff sent about a concern is not its response ([] when it is): it
    must go to the family's address on the concern, have no places left to fill, and
    pass the consent check of a command-line approval."""
    reasons = []
    family = family_address(config, contact.submitter_email)
    if family is None:
        reasons.append("the concern has no email address for the family")
    elif family.lower() not in sent.recipients:
        reasons.append(f"not addressed to the family's address on the concern ({family})")
    markers = unfilled_markers(sent.text)
    if markers:
        reasons.append("places for staff left to fill: " + "; ".join(markers))
    draft = next((d for d in contact.drafts if d.status == DraftStatus.DRAFT), None)
    refusal = consent_refusal(session, contact, draft, sent.text)
    if refusal:
        reasons.append(f"consent: {refusal}")
    return reasons


def _record_response(session: Session, contact: Contact, sent: SentItem) -> None:
    if contact.responded_at is None or sent.sent_at < contact.responded_at:
        contact.responded_at, contact.responded_by = sent.sent_at, sent.officer
    if contact.status != ContactStatus.CLOSED:
        contact.status = ContactStatus.RESPONDED
    open_drafts = [d for d in contact.drafts if d.status == DraftStatus.DRAFT]
    for draft in open_drafts:
        draft.status = DraftStatus.SENT_BY_STAFF
        draft.decided_by, draft.decided_at = sent.officer, sent.sent_at
        draft.sent_text = sent.text
    record_event(
        session, actor=sent.officer, action="draft_sent",
        contact_id=contact.id, draft_id=open_drafts[0].id if open_drafts else None,
        detail={"via": "Sent folder", "text": sent.text, "message_id": sent.message_id},
    )
    event(log, logging.INFO, "staff_response_found", reference=contact.reference,
          drafts_closed=len(open_drafts))


def _record_staff_mail(
    session: Session, contact: Contact, sent: SentItem, reasons: list[str]
) -> None:
    record_event(
        session, actor=sent.officer, action=STAFF_MAIL, contact_id=contact.id,
        detail={"via": "Sent folder", "message_id": sent.message_id,
                "subject": sent.subject, "to": list(sent.recipients),
                "sent_at": sent.sent_at.isoformat(), "not_the_response": reasons},
    )
    event(log, logging.INFO, "staff_mail_about_concern", reference=contact.reference,
          reasons=len(reasons))


def _date(msg: EmailMessage):  # type: ignore[no-untyped-def]
    try:
        return parsedate_to_datetime(header_text(msg, "Date"))
    except (TypeError, ValueError):
        return None
