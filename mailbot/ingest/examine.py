"""The examine stage: what one message is, and what it says. Pure: bytes and
configuration in, an `Examined` out; no network, no database, never an exception.

recognise (what kind of message) -> parse (the form's fields, or a direct email's
best effort) -> triage (how urgent, which categories). It imports nothing that stores
or sends.

A message is either logged or quarantined, never both. Quarantine is for a message that
gives no log entry (not an email at all, or one the database refuses). A family's contact
that could not be read properly (a portal form whose structure or base64 is broken, a
message too large to read whole, a parser failure) is logged with what could be read,
flagged `needs_review` with the problem, so that the 72-hour clock runs on it and staff
see it; `mailbot messages replay` reads it again once the cause is fixed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from mailbot.config import Config
from mailbot.errors import ConfigError
from mailbot.ingest.recognise import MessageKind, Recognition, recognise
from mailbot.parsers.contact import (
    Disposition,
    Flag,
    FormParseError,
    ParsedContact,
    Source,
    Submitter,
)
from mailbot.parsers.direct_email import parse_direct_email
from mailbot.parsers.mime import header_addresses, read_message
from mailbot.parsers.portal_form import parse_portal_form
from mailbot.parsers.quoting import new_text
from mailbot.triage import (
    TriageResult,
    TriageRules,
    TriageRulesError,
    load_rules,
    triage_contact,
)

log = logging.getLogger(__name__)

AUTOMATIC_KINDS = {MessageKind.AUTO_REPLY, MessageKind.BOUNCE, MessageKind.BULK}


@dataclass
class Examined:
    """Everything the pure stages learned about one message, ready to be stored."""

    kind: str
    verified: bool
    disposition: str
    reason: str
    message_id: str | None = None
    sender: str | None = None
    subject: str | None = None
    date_header: datetime | None = None
    recognition_reasons: list[str] = field(default_factory=list)
    contact: ParsedContact | None = None
    our_reference: str | None = None  # a reply naming one of our references
    reply_to: str | None = None  # the Reply-To header, when it holds one address
    triage: TriageResult | None = None
    # For bounces: which of our emails failed.
    original_message_id: str | None = None
    bounced_recipients: tuple[str, ...] = ()
    # Why a contact could not be read properly ("" when it could): logged for review.
    problem: str = ""


def triage_rules(config: Config) -> TriageRules:
    rules_file = config.triage.rules_file
    try:
        return load_rules(Path(rules_file) if rules_file else None)
    except TriageRulesError as exc:
        raise ConfigError(f"triage rules: {exc}") from exc


def examine(
    raw: bytes,
    config: Config,
    *,
    rules: TriageRules | None = None,
    too_large: bool = False,
) -> Examined:
    """Recognise, parse and triage one message. Pure, and never raises: whatever goes
    wrong becomes a quarantine disposition with its reason, keeping what could be read."""
    try:
        msg = read_message(raw)
        recognition = recognise(msg, config)
    except Exception as exc:  # noqa: BLE001 - any failure must quarantine, not stop the run
        return Examined(
            kind=MessageKind.MALFORMED,
            verified=False,
            disposition=Disposition.QUARANTINED,
            reason=f"could not be read as an email ({exc.__class__.__name__})",
        )
    examined = Examined(
        kind=str(recognition.kind),
        verified=recognition.verified,
        disposition=Disposition.LOGGED,
        reason="",
        message_id=recognition.message_id,
        sender=recognition.sender,
        subject=_header(msg, "Subject"),
        date_header=_date_header(msg),
        recognition_reasons=list(recognition.reasons),
        our_reference=recognition.our_reference,
        original_message_id=recognition.original_message_id,
        bounced_recipients=tuple(recognition.bounced_recipients),
    )
    if recognition.kind == MessageKind.MALFORMED:
        examined.disposition = Disposition.QUARANTINED
        examined.reason = "; ".join(recognition.reasons) or "not a readable email"
        return examined
    if recognition.kind in AUTOMATIC_KINDS:
        examined.disposition = Disposition.IGNORED
        examined.reason = f"{recognition.kind}: " + "; ".join(recognition.reasons)
        return examined

    examined.contact, problem = _parse_contact(msg, recognition, config)
    examined.reply_to = _single_reply_to(msg)
    if rules is not None:
        read = examined.contact
        if recognition.kind == MessageKind.REPLY:
            # Our own words quoted back must not raise (or hide) anything.
            read = replace(read, concern_text=new_text(read.concern_text))
        examined.triage = _triage(read, rules)
    if too_large:
        examined.contact.flag(Flag.NEEDS_REVIEW)
        problem = problem or (
            f"larger than mailbox.max_message_bytes ({config.mailbox.max_message_bytes}); "
            "only the header was read, the whole message is in the processed folder"
        )
        examined.contact.problems.append(problem)
    # Logged either way; a problem is the reason, and the contact is flagged for review.
    examined.problem = problem
    examined.reason = problem or _logged_reason(recognition)
    return examined


def _parse_contact(
    msg: EmailMessage, recognition: Recognition, config: Config
) -> tuple[ParsedContact, str]:
    """The log entry for a family's contact, and the problem (flagged `needs_review`)
    that kept it from being read properly, if any."""
    try:
        if recognition.kind == MessageKind.PORTAL_FORM:
            try:
                contact = parse_portal_form(msg, config)
            except FormParseError as exc:
                # Still logged, so the clock runs and staff see it: the text may hold a
                # real concern even when the form's structure is broken.
                contact = parse_direct_email(msg, config)
                contact.source = Source.PORTAL_FORM
                contact.flag(Flag.NEEDS_REVIEW)
                contact.problems.append(f"portal form could not be read: {exc}")
                _mark_unverified(contact, recognition)
                return contact, f"portal form could not be read: {exc}"
            _mark_unverified(contact, recognition)
            return contact, ""
        contact = parse_direct_email(msg, config)
    except Exception as exc:  # noqa: BLE001
        contact = ParsedContact(
            source=Source.DIRECT_EMAIL,
            submitter=Submitter(email=recognition.sender or ""),
            subject=_header(msg, "Subject") or "",
        )
        contact.flag(Flag.NEEDS_REVIEW)
        problem = f"could not be parsed ({exc.__class__.__name__})"
        contact.problems.append(problem)
        return contact, problem
    if recognition.kind == MessageKind.REPLY:
        contact.flag(Flag.REPLY_TO_US)
    if recognition.sender and recognition.sender.lower() in config.own_addresses:
        contact.flag(Flag.FROM_OUR_DOMAIN)
        contact.flag(Flag.NEEDS_REVIEW)
    return contact, ""


def _triage(contact: ParsedContact, rules: TriageRules) -> TriageResult | None:
    try:
        return triage_contact(contact, rules)
    except Exception:  # noqa: BLE001 - untriaged is stored as a concern, never dropped
        log.debug("triage failed", exc_info=True)
        contact.flag(Flag.NEEDS_REVIEW)
        return None


def _single_reply_to(msg: EmailMessage) -> str | None:
    try:
        addresses = header_addresses(msg, "Reply-To")
    except Exception:  # noqa: BLE001
        return None
    return addresses[0][1] if len(addresses) == 1 else None


def _mark_unverified(contact: ParsedContact, recognition: Recognition) -> None:
    if not recognition.verified:
        contact.flag(Flag.UNVERIFIED_SENDER)


def _logged_reason(recognition: Recognition) -> str:
    if recognition.kind == MessageKind.PORTAL_FORM:
        return "portal form" if recognition.verified else "portal form look-alike, unverified"
    if recognition.kind == MessageKind.REPLY:
        return "reply to one of our emails"
    return "direct email"


def _header(msg: EmailMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
        return None if value is None else str(value)
    except Exception:  # noqa: BLE001 - a malformed header must not stop the message
        return None


def _date_header(msg: EmailMessage) -> datetime | None:
    value = _header(msg, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
