"""Quarantine replay: decides whether a quarantined message, or a contact logged for
review because it could not be read properly, can now be read, and if so puts it through
the pipeline again, as Mailman's `unshunt` does.

A message lands in quarantine when it gives no log entry (not an email, or one the
database refused); a portal form whose structure is broken is logged for review instead
(mailbot/ingest/examine.py). Once the cause is fixed (a portal whose labels changed and
now has them in `[portal.labels]`, a new mailbot version), `mailbot messages replay ID
--by NAME` examines the kept bytes again: what is now a family's contact is logged,
triaged and answered like any new one (one already logged is read again in place,
keeping its reference, clock and drafts), and a quarantined message's copy moves from
Quarantine to Processed. A message that still cannot be read stays as it is, with the
new reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailbot.casework.audit import record_event
from mailbot.config import Config
from mailbot.db.models import Disposition, StoredMessage
from mailbot.errors import RefusedError
from mailbot.ingest.examine import examine
from mailbot.ingest.store import contact_fields, contact_row
from mailbot.logs import event
from mailbot.mailbox.fetch import Mailbox
from mailbot.parsers.contact import Flag
from mailbot.replies.respond import respond
from mailbot.triage import TriageRules

log = logging.getLogger(__name__)


class ReplayError(RefusedError, ValueError):
    """A message that cannot be replayed; says why."""


@dataclass
class Replayed:
    message: StoredMessage
    disposition: str
    reason: str
    reference: str | None
    still_unreadable: bool = False


def rereadable(message: StoredMessage) -> bool:
    """Quarantined, or logged from a contact that could not be read properly."""
    if message.disposition == Disposition.QUARANTINED:
        return True
    contact = message.contact
    return (message.disposition == Disposition.LOGGED and contact is not None
            and Flag.NEEDS_REVIEW in contact.flags and message.reason in contact.problems)


def replay(
    session: Session, config: Config, rules: TriageRules, message_id: int, *, by: str
) -> Replayed:
    message = session.get(StoredMessage, message_id)
    if message is None:
        raise ReplayError(f"no message {message_id}")
    if not rereadable(message):
        raise ReplayError(f"message {message_id} is {message.disposition}, not quarantined "
                          f"nor a contact that could not be read")
    if message.raw is None:
        raise ReplayError(f"message {message_id} was too large to keep: read it in the mailbox")
    if not by.strip():
        raise ReplayError("--by must name the member of staff")
    examined = examine(message.raw, config, rules=rules)
    if examined.disposition == Disposition.QUARANTINED or examined.problem:
        if message.disposition == Disposition.QUARANTINED:
            message.reason = f"replayed by {by}, still unreadable: {examined.reason}"[:2000]
        record_event(session, actor=by, action="message_replayed",
                     detail={"message": message.id, "result": "still unreadable"})
        return Replayed(message, message.disposition, examined.reason, None,
                        still_unreadable=True)
    message.kind, message.verified = examined.kind, examined.verified
    message.recognition_reasons = list(examined.recognition_reasons)
    message.disposition = examined.disposition
    message.reason = f"replayed by {by}: {examined.reason}"[:2000]
    message.message_id = message.message_id or examined.message_id
    message.sender, message.subject = examined.sender, examined.subject
    reference = None
    if message.contact is not None and examined.contact is not None:
        # Already in the log (a form that could not be read as one): read it again in
        # place, keeping its reference, clock and drafts; staff see the audit event.
        for name, value in contact_fields(session, examined).items():
            setattr(message.contact, name, value)
        reference = message.contact.reference
    elif examined.contact is not None:
        contact = contact_row(session, message, examined, message.received_at)
        session.add(contact)
        session.flush()
        respond(session, config, contact, examined)
        reference = contact.reference
    record_event(session, actor=by, action="message_replayed",
                 detail={"message": message.id, "result": message.disposition,
                         "reference": reference})
    event(log, logging.INFO, "message_replayed", message=message.id,
          disposition=message.disposition, reference=reference or "-")
    return Replayed(message, message.disposition, examined.reason, reference)


def move_out_of_quarantine(config: Config, message: StoredMessage) -> bool:
    """Move the mailbox's copy to Processed, found by its Message-ID (best effort)."""
    if not message.message_id:
        return False
    settings = config.mailbox
    with Mailbox.connect(settings) as mailbox:
        uids = mailbox.uids_with_message_id(settings.quarantine_folder,
                                            f"<{message.message_id}>")
        if not uids:
            return False
        mailbox.ensure_folders(settings.processed_folder)
        mailbox.client.folder.set(settings.quarantine_folder)
        mailbox.move(uids, settings.processed_folder)
    return True
