"""The outbox: every email mailbot sends is recorded before it is sent, and sent once.

An email is built once, with its own Message-ID, and stored as the exact bytes to send;
retries resend those bytes. The sender claims an email (`sending`), hands it to SMTP,
and marks it `sent` the moment the server has accepted it: only a crash in those few
milliseconds can send it twice. Its copy is then filed in the mailbox's Sent folder on a
thread of its own while the next email goes to SMTP. After a crash, an email left
`sending` is looked up in the Sent folder by its Message-ID (found means it went) and
otherwise sent again; a copy a crash or the mailbox left unfiled is filed on a later pass.
Temporary SMTP failures (4xx, lost connections) are retried with backoff; permanent ones
(5xx) mark the email `failed`, visible to staff.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import RetryCallState, wait_exponential

from mailbot.casework.audit import record_event
from mailbot.config import Config
from mailbot.db.models import OutboxEmail, utcnow
from mailbot.devtools.failpoints import (
    AFTER_LEDGER,
    AFTER_MARK_SENT,
    AFTER_SMTP_ACCEPT,
    BEFORE_SMTP,
    BEFORE_SMTP_DATA,
    failpoint,
)
from mailbot.errors import ConfigError, RefusedError, describe
from mailbot.logs import event
from mailbot.mailbox.smtp import SMTP_ERRORS, SmtpConnection, smtp_code
from mailbot.parsers.mime import POLICY, WIRE_POLICY
from mailbot.replies.ledger import LedgerError, SendLedger, Step

log = logging.getLogger(__name__)


class Status(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # never sent: a rule said no (rate limit, bad address)


# What counts as an automatic reply already made.
LIVE_STATUSES = (Status.QUEUED, Status.SENDING, Status.SENT)


class Kind(StrEnum):
    SIGNPOSTING = "signposting"
    ACKNOWLEDGEMENT = "acknowledgement"
    URGENT_ALERT = "urgent_alert"
    DEADLINE_WARNING = "deadline_warning"
    DEADLINE_BREACH = "deadline_breach"
    PERSISTENT_CONTACT = "persistent_contact"
    OUTAGE_ALERT = "outage_alert"
    TEMPLATE_ALERT = "template_alert"
    MONTHLY_REPORT = "monthly_report"


# Emails only staff receive: after an interrupted send they go again, since a second copy
# of an alert harms nobody and a lost one might.
STAFF_ALERTS: frozenset[Kind] = frozenset({
    Kind.URGENT_ALERT, Kind.DEADLINE_WARNING, Kind.DEADLINE_BREACH, Kind.PERSISTENT_CONTACT,
    Kind.OUTAGE_ALERT, Kind.TEMPLATE_ALERT,
})


class UnsafeRecipient(ValueError):
    """An address that is not exactly one valid mailbox: never put into a header."""


@lru_cache(maxsize=4096)
def single_address(value: str) -> str:
    """The one valid address in `value`, normalised; anything else is refused.

    Refuses CR/LF, several addresses, display names and group syntax, so a value taken
    from a message can never add a recipient or a header."""
    if not value or any(c in value for c in "\r\n\0,;<>\"()[]") or value.count("@") != 1:
        raise UnsafeRecipient("not exactly one plain address")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise UnsafeRecipient(str(exc)) from exc


def family_address(config: Config, *candidates: str | None) -> str | None:
    """The first candidate that is one plain, valid address and none of ours or the
    portal's: a reply never goes to ourselves, and two robots never answer each other."""
    excluded = set(config.own_addresses) | set(config.portal.senders)
    for candidate in candidates:
        if not candidate:
            continue
        try:
            address = single_address(candidate)
        except UnsafeRecipient:
            continue
        if address.lower() not in excluded:
            return address
    return None


def one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def new_message_id(config: Config, reference: str | None) -> str:
    """`<mailbot.SC-2026-00042.RANDOM@our.domain>`: unique, and says which concern."""
    domain = config.smtp.from_address.rpartition("@")[2]
    tag = f"{reference}." if reference else ""
    return f"<mailbot.{tag}{secrets.token_hex(16)}@{domain}>"


def recently_auto_replied(session: Session, recipient: str, window: timedelta) -> bool:
    """Whether this address had an automatic reply (made, or on its way) within `window`."""
    return bool(session.scalar(
        select(func.count())
        .select_from(OutboxEmail)
        .where(OutboxEmail.automatic.is_(True))
        .where(OutboxEmail.status.in_(LIVE_STATUSES))
        .where(func.lower(OutboxEmail.recipient) == recipient.lower())
        .where(OutboxEmail.created_at >= utcnow() - window)
    ))


def enqueue(
    session: Session,
    config: Config,
    *,
    kind: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    contact_id: int | None = None,
    reference: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    auto_submitted: str = "auto-replied",
    rate_limited: bool = False,
    attachments: Sequence[tuple[str, bytes]] = (),
) -> OutboxEmail:
    """Record one email to send. Returns the row; its status says if it will be sent."""
    row = OutboxEmail(
        contact_id=contact_id,
        kind=kind,
        recipient=one_line(to, 320),
        subject=one_line(subject),
        message_id=new_message_id(config, reference),
        in_reply_to=in_reply_to,
        automatic=rate_limited,
        status=Status.QUEUED,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    try:
        recipient = single_address(to)
    except UnsafeRecipient as exc:
        row.status, row.last_error = Status.SUPPRESSED, f"unsafe recipient: {exc}"
        session.add(row)
        return row
    row.recipient = recipient
    window = timedelta(hours=config.replies.auto_reply_window_hours)
    if rate_limited and recently_auto_replied(session, recipient, window):
        row.status = Status.SUPPRESSED
        row.last_error = f"an automatic reply already went to this address in the last {window}"
        session.add(row)
        return row

    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(addr_spec=config.smtp.from_address)
    msg["To"] = Address(addr_spec=recipient)
    msg["Subject"] = row.subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = row.message_id
    msg["Auto-Submitted"] = auto_submitted
    # Asks Exchange and others not to answer us with their own automatic replies.
    msg["X-Auto-Response-Suppress"] = "All"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*references, in_reply_to][-10:])
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, data in attachments:
        kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    row.raw = msg.as_bytes(policy=WIRE_POLICY)
    session.add(row)
    return row


@dataclass
class SendSummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    recovered: int = 0
    # Set when the mail server itself could not be reached (not a refused email).
    connection_error: str | None = None
    # Set when the mailbox (for the Sent copies) could not be reached in this pass.
    mailbox_error: str | None = None
    # Another process (the daemon, or an approval) was sending: what is due is its to send.
    busy: bool = False

    def then(self, later: SendSummary | None) -> SendSummary:
        """Both passes together; whether the server answered is what the later one found."""
        if later is None:
            return self
        return SendSummary(
            sent=self.sent + later.sent,
            retrying=later.retrying,
            failed=self.failed + later.failed,
            recovered=self.recovered + later.recovered,
            connection_error=later.connection_error,
            mailbox_error=later.mailbox_error or self.mailbox_error,
        )


class SentFolder:
    """The mailbox's Sent folder, through an IMAP connection opened on demand. Once the
    mailbox cannot be reached it is not tried again in this pass (`lost` says why), so a
    mailbox that is down costs one connection attempt a pass, not one an email. Which
    folder that is the mailbox says once connected (`[mailbox] sent_folder`, else the
    server's \\Sent: Exchange's "Sent Items")."""

    def __init__(self, open_mailbox: Callable[[], object] | None) -> None:
        self.open_mailbox = open_mailbox
        self.folder = ""
        self.mailbox = None
        self.lost: str | None = None

    def _client(self):  # type: ignore[no-untyped-def]
        if self.mailbox is None and self.open_mailbox is not None and self.lost is None:
            try:
                self.mailbox = self.open_mailbox()
                self.folder = self.mailbox.sent_folder  # type: ignore[attr-defined]
                self.mailbox.ensure_folders(self.folder)  # type: ignore[attr-defined]
            except Exception as exc:
                self._lose(exc)
                raise
        return self.mailbox

    def contains(self, message_id: str) -> bool | None:
        """Whether a copy with this Message-ID is filed; None when the folder cannot be
        read now."""
        try:
            mailbox = self._client()
            if mailbox is None:
                return None
            return bool(mailbox.uids_with_message_id(self.folder, message_id))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - unknown, not "absent": decide later
            self._lose(exc)
            return None

    def save(self, raw: bytes) -> bool:
        try:
            mailbox = self._client()
            if mailbox is None:
                return False
            mailbox.append(raw, self.folder)  # type: ignore[attr-defined]
            return True
        except Exception as exc:  # noqa: BLE001 - a missing copy must not unsend the email
            self._lose(exc)
            event(log, logging.WARNING, "sent_copy_not_saved", error=describe(exc))
            return False

    def _lose(self, exc: BaseException) -> None:
        self.lost = self.lost or describe(exc)
        if self.mailbox is not None:
            self.close()

    def close(self) -> None:
        if self.mailbox is not None:
            try:
                self.mailbox.close()  # type: ignore[attr-defined]
            finally:
                self.mailbox = None


def send_due(
    config: Config,
    sessions: sessionmaker[Session],
    open_mailbox: Callable[[], object] | None = None,
) -> SendSummary:
    """Send every queued email that is due; recover any left `sending` by a crash."""
    summary = SendSummary()
    ledger = SendLedger(config.state.directory)
    try:
        ledger.check_writable()
        with ledger.sending(wait_seconds=SENDER_WAIT.total_seconds()) as ours:
            if not ours:
                event(log, logging.INFO, "send_left_to_other_sender")
                summary.busy = True
                return summary
            _send_all_due(config, sessions, open_mailbox, ledger, summary)
    except LedgerError as exc:
        event(log, logging.ERROR, "send_ledger_unwritable", error=str(exc))
        summary.connection_error = str(exc)
    return summary


# How long a sender waits for another one (the daemon, or an approval) to finish its pass.
SENDER_WAIT = timedelta(seconds=60)


def _send_all_due(
    config: Config,
    sessions: sessionmaker[Session],
    open_mailbox: Callable[[], object] | None,
    ledger: SendLedger,
    summary: SendSummary,
) -> None:
    sent_folder = SentFolder(open_mailbox)
    try:
        _recover_interrupted(sessions, sent_folder, ledger, summary)
        with sessions() as session:
            due = session.execute(
                select(OutboxEmail.id)
                .where(OutboxEmail.status == Status.QUEUED)
                .where(OutboxEmail.next_attempt_at <= utcnow())
                .order_by(OutboxEmail.id)
            ).scalars().all()
            unfiled = _unfiled_copies(session) if open_mailbox is not None else []
        for email_id, message_id, raw in unfiled:
            if sent_folder.lost:
                break
            _file_copy(sessions, sent_folder, email_id, raw, unless_there=message_id)
        smtp: SmtpConnection | None = None
        try:
            for email_id in due:
                smtp = _send_one(config, sessions, email_id, smtp, sent_folder, ledger,
                                 summary)
                if summary.connection_error:
                    break  # the server is down: the rest wait for the next pass
        finally:
            if smtp is not None:
                smtp.close()
    finally:
        sent_folder.close()
        summary.mailbox_error = sent_folder.lost


# How long a copy that could not be filed is tried again, once a pass.
FILING_RETRY = timedelta(days=1)


def _unfiled_copies(session: Session) -> list[tuple[int, str, bytes]]:
    rows = session.execute(
        select(OutboxEmail.id, OutboxEmail.message_id, OutboxEmail.raw)
        .where(OutboxEmail.status == Status.SENT)
        .where(OutboxEmail.copy_saved.is_(False))
        .where(OutboxEmail.raw.is_not(None))
        .where(OutboxEmail.sent_at >= utcnow() - FILING_RETRY)
        .order_by(OutboxEmail.id)
    ).all()
    return [(email_id, message_id, raw) for email_id, message_id, raw in rows]


def _file_copy(sessions: sessionmaker[Session], sent_folder: SentFolder, email_id: int,
               raw: bytes, *, unless_there: str | None = None) -> None:
    """File the copy of a sent email in Sent (with `unless_there`, its Message-ID, only if
    none is there yet). A copy that cannot be filed leaves `copy_saved` false: it is tried
    again on a later pass, and the email stays `sent`."""
    there = unless_there is not None and sent_folder.contains(unless_there)
    if there is None or not (there or sent_folder.save(raw)):
        return
    outbox = OutboxEmail.__table__
    try:
        with sessions.begin() as session:
            session.connection().execute(
                outbox.update().where(outbox.c.id == email_id).values(copy_saved=True)
            )
    except SQLAlchemyError as exc:  # a second copy is found by Message-ID next time
        event(log, logging.WARNING, "sent_copy_not_recorded", outbox=email_id,
              error=describe(exc))


def _recover_interrupted(
    sessions: sessionmaker[Session],
    sent_folder: SentFolder,
    ledger: SendLedger,
    summary: SendSummary,
) -> None:
    """Decide, for each email a crash left `sending`, whether it went (see ledger.py)."""
    steps = ledger.last_steps()
    with sessions() as session:
        interrupted = session.execute(
            select(OutboxEmail).where(OutboxEmail.status == Status.SENDING)
        ).scalars().all()
        for row in interrupted:
            step = steps.get(row.message_id)
            if step is Step.ACCEPTED or (step is None and sent_folder.contains(row.message_id)):
                row.status, row.sent_at = Status.SENT, row.sent_at or utcnow()
                summary.recovered += 1
                event(log, logging.WARNING, "send_recovered_as_sent", outbox=row.id,
                      kind=row.kind)
            elif step is Step.HANDING_OVER:
                _uncertain(row)
                summary.failed += row.status == Status.FAILED
            else:
                # It never reached the mail server: it may go again.
                row.status = Status.QUEUED
                event(log, logging.WARNING, "send_interrupted_requeued", outbox=row.id,
                      kind=row.kind)
        session.commit()
        still_sending = session.execute(
            select(OutboxEmail.message_id).where(OutboxEmail.status == Status.SENDING)
        ).scalars().all()
    if steps:
        ledger.compact(still_sending)


def _uncertain(row: OutboxEmail) -> None:
    """The mail server was receiving this email when it was interrupted: it may have been
    delivered. Staff alerts go again (a second copy harms nobody); nothing to a family
    or anyone else is ever sent twice, so those wait for a person."""
    if row.kind in STAFF_ALERTS:
        row.status = Status.QUEUED
        event(log, logging.WARNING, "send_uncertain_alert_requeued", outbox=row.id,
              kind=row.kind)
        return
    row.status = Status.FAILED
    row.last_error = (
        "interrupted while the mail server was receiving it: it may have been delivered, "
        "so it is not sent again automatically; check with the recipient before resending"
    )
    event(log, logging.ERROR, "send_uncertain_not_resent", outbox=row.id, kind=row.kind)


def _send_one(
    config: Config,
    sessions: sessionmaker[Session],
    email_id: int,
    smtp: SmtpConnection | None,
    sent_folder: SentFolder,
    ledger: SendLedger,
    summary: SendSummary,
) -> SmtpConnection | None:
    claimed = claim(sessions, email_id)
    if claimed is None:
        return smtp
    raw, recipient, message_id = claimed
    failpoint(BEFORE_SMTP)
    error: Exception | None = None
    handed_over = False
    try:
        if smtp is None:
            smtp = SmtpConnection(config)
        smtp.offer(recipient)
        ledger.note(message_id, Step.HANDING_OVER)
        handed_over = True
        failpoint(BEFORE_SMTP_DATA)
        smtp.hand_over(raw)
        failpoint(AFTER_SMTP_ACCEPT)
        ledger.note(message_id, Step.ACCEPTED)
    except ConfigError as exc:
        # The mail server's secret cannot be read (by this user, or at all): nothing went.
        _release_unsent(sessions, email_id, handed_over)
        summary.connection_error = str(exc)
        event(log, logging.ERROR, "smtp_secret_unreadable", outbox=email_id, error=str(exc))
        return None
    except LedgerError as exc:
        # Nothing is handed over without its record; after the 250, the next pass's
        # recovery treats the email as uncertain, never as unsent.
        _release_unsent(sessions, email_id, handed_over)
        summary.connection_error = str(exc)
        event(log, logging.ERROR, "send_ledger_unwritable", outbox=email_id, error=str(exc))
        return smtp
    except SMTP_ERRORS as exc:
        error = exc
        if smtp is not None:
            smtp.close()
        smtp = None
    if error is None:
        failpoint(AFTER_LEDGER)
        _mark_sent(sessions, email_id)
        failpoint(AFTER_MARK_SENT)
        _file_copy(sessions, sent_folder, email_id, raw)
        summary.sent += 1
        return smtp
    code = smtp_code(error)
    if handed_over and not isinstance(error, smtplib.SMTPResponseException):
        # The connection broke during the data: the server may have it.
        summary.connection_error = f"{error.__class__.__name__}: {error}"[:500]
        with sessions.begin() as session:
            row = session.get(OutboxEmail, email_id)
            if row is not None:
                _uncertain(row)
                summary.failed += row.status == Status.FAILED
        return None
    if handed_over:
        ledger.note(message_id, Step.REFUSED)
    if code is None or isinstance(error, smtplib.SMTPAuthenticationError):
        summary.connection_error = f"{error.__class__.__name__}: {error}"[:500]
    # A refused login is our configuration, not this email: retry, never fail the email.
    permanent = (
        code is not None
        and 500 <= code < 600
        and not isinstance(error, smtplib.SMTPAuthenticationError)
    )
    with sessions() as session:
        row = session.get(OutboxEmail, email_id)
        if row is None:  # removed meanwhile (retention): nothing left to mark
            return None
        row.last_error = f"{code or ''} {error.__class__.__name__}: {error}".strip()[:1000]
        gave_up = code is not None and row.attempts >= config.replies.max_send_attempts
        if permanent or gave_up:
            row.status = Status.FAILED
            summary.failed += 1
            level, name = logging.ERROR, "send_failed"
        else:
            row.status = Status.QUEUED
            row.next_attempt_at = utcnow() + _backoff(
                row.attempts, config.replies.retry_base_seconds
            )
            summary.retrying += 1
            level, name = logging.WARNING, "send_deferred"
        session.commit()
        event(log, level, name, outbox=row.id, kind=row.kind, attempt=row.attempts,
              smtp_code=code or "-", error=error.__class__.__name__)
    return smtp


def _release_unsent(sessions: sessionmaker[Session], email_id: int, handed_over: bool) -> None:
    """Put back an email whose send stopped because the ledger could not be written: it
    never reached the server unless its data was handed over."""
    if handed_over:
        return  # left `sending`: recovery decides, with the ledger readable again
    outbox = OutboxEmail.__table__
    with sessions.begin() as session:
        session.connection().execute(
            outbox.update().where(outbox.c.id == email_id).values(status=Status.QUEUED)
        )


def _backoff(attempts: int, base_seconds: int) -> timedelta:
    """How long until an email's next attempt: tenacity's exponential wait, capped at an
    hour. The wait is stored as the row's next_attempt_at rather than slept in a retry
    loop, so a retry outlives a restart and never holds up the rest of the poll."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempts
    return timedelta(seconds=wait_exponential(multiplier=base_seconds, max=3600)(state))


class ResendRefused(RefusedError):
    """Only a failed email can be sent again, and only by a named person."""


def resend(session: Session, email_id: int, *, by: str) -> OutboxEmail:
    """Queue a failed email again, the same bytes and Message-ID, because a member of
    staff has checked that it should go (after a refusal they fixed, or an interrupted
    send they found did not arrive). Recorded in the audit trail under BY."""
    row = session.get(OutboxEmail, email_id)
    if row is None:
        raise ResendRefused(f"no email {email_id} in the outbox")
    if not by.strip():
        raise ResendRefused("--by must name the person asking for the resend")
    if row.status != Status.FAILED or row.raw is None:
        raise ResendRefused(f"email {email_id} is {row.status}: only a failed email is resent")
    was = row.last_error or ""
    row.status, row.attempts, row.next_attempt_at = Status.QUEUED, 0, utcnow()
    row.last_error = f"resend asked by {by}; before: {was}"[:1000]
    record_event(session, actor=by, action="email_resend", contact_id=row.contact_id,
                 detail={"outbox": row.id, "kind": row.kind, "before": was[:300]})
    return row


def claim(sessions: sessionmaker[Session], email_id: int) -> tuple[bytes, str, str] | None:
    """Mark one queued email `sending`, durably, before it goes anywhere. Only a row still
    queued is claimed, so two senders at work at once (the daemon and a member of staff's
    approval, say) never both claim it. Single statements: this runs once per email sent."""
    outbox = OutboxEmail.__table__
    with sessions.begin() as session:
        connection = session.connection()
        claimed = connection.execute(
            outbox.update()
            .where(outbox.c.id == email_id)
            .where(outbox.c.status == Status.QUEUED)
            .where(outbox.c.raw.is_not(None))
            .values(status=Status.SENDING, attempts=outbox.c.attempts + 1)
        ).rowcount
        if claimed != 1:
            return None
        raw, recipient, message_id = connection.execute(
            select(outbox.c.raw, outbox.c.recipient, outbox.c.message_id)
            .where(outbox.c.id == email_id)
        ).one()
    return raw, recipient, message_id


def _mark_sent(sessions: sessionmaker[Session], email_id: int) -> None:
    """`sent` in the database, after the ledger has recorded the server's 250 (its copy is
    filed next). Should this write fail, the ledger still says the email went."""
    outbox = OutboxEmail.__table__
    with sessions.begin() as session:
        connection = session.connection()
        connection.execute(
            outbox.update()
            .where(outbox.c.id == email_id)
            .values(status=Status.SENT, sent_at=utcnow(), copy_saved=False, last_error=None)
        )
        kind, attempts = connection.execute(
            select(outbox.c.kind, outbox.c.attempts).where(outbox.c.id == email_id)
        ).one()
    event(log, logging.INFO, "email_sent", outbox=email_id, kind=kind, attempt=attempts)
