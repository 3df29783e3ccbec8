"""Approval from the mailbox itself: drafts placed in the Drafts folder for staff who
live in Outlook, and their sent copies found in the Sent folder.

It decides three things on each pass: which open drafts still need a copy in Drafts
(APPEND with `\\Draft`, our reference in the subject), which copies must go because the
draft was decided in mailbot (approved, rejected, superseded), and which messages in Sent
are a member of staff's response to a concern (matched on our reference in the subject,
or on In-Reply-To the family's message). A response found there is recorded with the
text as actually sent, and the draft can no longer be approved a second time.
"""

from __future__ import annotations

import logging
import re
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
    header_text,
    html_to_text,
    read_message,
)
from mailbot.replies.drafts import Status as DraftStatus

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


def sync(config: Config, sessions: sessionmaker[Session], mailbox: Mailbox) -> None:
    folders = config.drafts
    mailbox.ensure_folders(folders.drafts_folder, config.mailbox.sent_folder)
    # A commit after each step (and after each draft placed): what one step did is kept
    # if the mailbox or the database fails the next.
    with sessions() as session:
        _place_open_drafts(config, session, mailbox)
        _remove_decided_drafts(config, session, mailbox)
        session.commit()
        _record_staff_responses(config, session, mailbox)
        session.commit()


# Drafts placed per pass: a backlog (after an outage, say) is spread over a few passes
# rather than holding up the next poll.
PLACED_PER_PASS = 100


def _place_open_drafts(config: Config, session: Session, mailbox: Mailbox) -> None:
    """Put a copy of each open draft in the Drafts folder, once.

    Idempotent whatever fails when: a draft's Message-ID is looked up in Drafts (a header
    search) before it is appended, so a copy appended by a pass that died before its
    commit is found rather than appended again; and each draft's `placed` is committed on
    its own, so a commit refused or lost costs at most that one draft's search."""
    folder = config.drafts.drafts_folder
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


def _remove_decided_drafts(config: Config, session: Session, mailbox: Mailbox) -> None:
    drafts = session.execute(
        select(Draft).where(Draft.status != DraftStatus.DRAFT).where(Draft.mailbox_copy == "placed")
    ).scalars().all()
    for draft in drafts:
        uids = mailbox.uids_with_message_id(config.drafts.drafts_folder, draft.message_id)
        mailbox.delete(config.drafts.drafts_folder, uids)
        draft.mailbox_copy = "removed"
        event(log, logging.INFO, "draft_removed_from_mailbox", draft=draft.id,
              status=draft.status)


def _record_staff_responses(config: Config, session: Session, mailbox: Mailbox) -> None:
    folder = config.mailbox.sent_folder
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
        if contact is not None:
            sent_at = item.internal_date or _date(msg) or utcnow()
            _record_response(session, contact, msg, sent_at)
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


def _record_response(session: Session, contact: Contact, msg: EmailMessage, sent_at) -> None:  # type: ignore[no-untyped-def]
    body = body_text(msg)
    text = body.plain if body.plain is not None else html_to_text(body.html or "")
    sender = header_text(msg, "From")
    if contact.responded_at is None or sent_at < contact.responded_at:
        contact.responded_at, contact.responded_by = sent_at, sender
    contact.status = ContactStatus.RESPONDED
    open_drafts = [d for d in contact.drafts if d.status == DraftStatus.DRAFT]
    for draft in open_drafts:
        draft.status = DraftStatus.SENT_BY_STAFF
        draft.decided_by, draft.decided_at = f"mail client ({sender})", sent_at
        draft.sent_text = text
    record_event(
        session, actor=f"mail client ({sender})", action="draft_sent",
        contact_id=contact.id, draft_id=open_drafts[0].id if open_drafts else None,
        detail={"via": "Sent folder", "text": text,
                "message_id": header_text(msg, "Message-ID").strip()},
    )
    event(log, logging.INFO, "staff_response_found", reference=contact.reference,
          drafts_closed=len(open_drafts))


def _date(msg: EmailMessage):  # type: ignore[no-untyped-def]
    try:
        return parsedate_to_datetime(header_text(msg, "Date"))
    except (TypeError, ValueError):
        return None
