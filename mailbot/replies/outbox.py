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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tenacity import RetryCallState, wait_exponential

from mailbot.config import Config
from mailbot.db.models import OutboxEmail, utcnow
from mailbot.devtools.failpoints import AFTER_SMTP_ACCEPT, BEFORE_SMTP, failpoint
from mailbot.logs import event
from mailbot.mailbox.smtp import SMTP_ERRORS, SmtpConnection, smtp_code
from mailbot.parsers.mime import POLICY, WIRE_POLICY

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
        )


class SentFolder:
    """The mailbox's Sent folder, through an IMAP connection opened on demand."""

    def __init__(self, open_mailbox: Callable[[], object] | None, folder: str) -> None:
        self.open_mailbox = open_mailbox
        self.folder = folder
        self.mailbox = None

    def _client(self):  # type: ignore[no-untyped-def]
        if self.mailbox is None and self.open_mailbox is not None:
            self.mailbox = self.open_mailbox()
            self.mailbox.ensure_folders(self.folder)  # type: ignore[attr-defined]
        return self.mailbox

    def contains(self, message_id: str) -> bool:
        mailbox = self._client()
        if mailbox is None:
            return False
        return bool(mailbox.uids_with_message_id(self.folder, message_id))  # type: ignore[attr-defined]

    def save(self, raw: bytes) -> bool:
        try:
            mailbox = self._client()
            if mailbox is None:
                return False
            mailbox.append(raw, self.folder)  # type: ignore[attr-defined]
            return True
        except Exception as exc:  # noqa: BLE001 - a missing copy must not unsend the email
            event(log, logging.WARNING, "sent_copy_not_saved", error=exc.__class__.__name__)
            return False

    def close(self) -> None:
        if self.mailbox is not None:
            self.mailbox.close()  # type: ignore[attr-defined]
            self.mailbox = None


def send_due(
    config: Config,
    sessions: sessionmaker[Session],
    open_mailbox: Callable[[], object] | None = None,
) -> SendSummary:
    """Send every queued email that is due; recover any left `sending` by a crash."""
    summary = SendSummary()
    sent_folder = SentFolder(open_mailbox, config.mailbox.sent_folder)
    try:
        _recover_interrupted(config, sessions, sent_folder, summary)
        with sessions() as session:
            due = session.execute(
                select(OutboxEmail.id)
                .where(OutboxEmail.status == Status.QUEUED)
                .where(OutboxEmail.next_attempt_at <= utcnow())
                .order_by(OutboxEmail.id)
            ).scalars().all()
            unfiled = _unfiled_copies(session) if open_mailbox is not None else []
        if not due and not unfiled:
            return summary
        with Filer(sessions, sent_folder) as filer:
            for email_id, message_id, raw in unfiled:
                filer.file(email_id, raw, unless_there=message_id)
            smtp: SmtpConnection | None = None
            try:
                for email_id in due:
                    smtp = _send_one(config, sessions, email_id, smtp, filer, summary)
                    if summary.connection_error:
                        break  # the server is down: the rest wait for the next pass
            finally:
                if smtp is not None:
                    smtp.close()
    finally:
        sent_folder.close()
    return summary


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


class Filer:
    """Files the copies of sent emails in the Sent folder, on a thread of its own, so the
    next email goes to SMTP while the mailbox stores this one's copy. A copy that cannot
    be filed is said in the log and leaves the email `sent`, with `copy_saved` false."""

    def __init__(self, sessions: sessionmaker[Session], sent_folder: SentFolder) -> None:
        self.sessions = sessions
        self.sent_folder = sent_folder
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sent-copies")

    def file(self, email_id: int, raw: bytes, *, unless_there: str | None = None) -> None:
        """File RAW; with `unless_there` (its Message-ID), only if no copy is there yet."""
        self.executor.submit(self._file, email_id, raw, unless_there)

    def _file(self, email_id: int, raw: bytes, unless_there: str | None) -> None:
        try:
            there = unless_there is not None and self.sent_folder.contains(unless_there)
            if not (there or self.sent_folder.save(raw)):
                return  # save() said why
            outbox = OutboxEmail.__table__
            with self.sessions.begin() as session:
                session.connection().execute(
                    outbox.update().where(outbox.c.id == email_id).values(copy_saved=True)
                )
        except Exception as exc:  # noqa: BLE001 - the email went; the copy is tried again
            event(log, logging.WARNING, "sent_copy_not_saved", outbox=email_id,
                  error=exc.__class__.__name__)

    def __enter__(self) -> Filer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.executor.shutdown(wait=True)


def _recover_interrupted(
    config: Config,
    sessions: sessionmaker[Session],
    sent_folder: SentFolder,
    summary: SendSummary,
) -> None:
    with sessions() as session:
        interrupted = session.execute(
            select(OutboxEmail).where(OutboxEmail.status == Status.SENDING)
        ).scalars().all()
        for row in interrupted:
            try:
                found = sent_folder.contains(row.message_id)
            except Exception as exc:  # noqa: BLE001 - decide when the mailbox answers
                event(log, logging.WARNING, "send_recovery_postponed", outbox=row.id,
                      error=exc.__class__.__name__)
                continue
            if found:
                row.status, row.sent_at, row.copy_saved = Status.SENT, utcnow(), True
                summary.recovered += 1
                event(log, logging.WARNING, "send_recovered_as_sent", outbox=row.id,
                      kind=row.kind)
            else:
                # Not accepted before the crash (no copy was filed): send it again.
                row.status = Status.QUEUED
                event(log, logging.WARNING, "send_interrupted_requeued", outbox=row.id,
                      kind=row.kind)
        session.commit()


def _send_one(
    config: Config,
    sessions: sessionmaker[Session],
    email_id: int,
    smtp: SmtpConnection | None,
    filer: Filer,
    summary: SendSummary,
) -> SmtpConnection | None:
    claimed = claim(sessions, email_id)
    if claimed is None:
        return smtp
    raw, recipient = claimed
    failpoint(BEFORE_SMTP)
    error: Exception | None = None
    try:
        if smtp is None:
            smtp = SmtpConnection(config)
        smtp.send(raw, recipient)
    except SMTP_ERRORS as exc:
        error = exc
        if smtp is not None:
            smtp.close()
        smtp = None
    if error is None:
        _mark_sent(sessions, email_id)
        failpoint(AFTER_SMTP_ACCEPT)
        filer.file(email_id, raw)
        summary.sent += 1
        return smtp
    code = smtp_code(error)
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
            return
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


def _backoff(attempts: int, base_seconds: int) -> timedelta:
    """How long until an email's next attempt: tenacity's exponential wait, capped at an
    hour. The wait is stored as the row's next_attempt_at rather than slept in a retry
    loop, so a retry outlives a restart and never holds up the rest of the poll."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempts
    return timedelta(seconds=wait_exponential(multiplier=base_seconds, max=3600)(state))


def claim(sessions: sessionmaker[Session], email_id: int) -> tuple[bytes, str] | None:
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
        raw, recipient = connection.execute(
            select(outbox.c.raw, outbox.c.recipient).where(outbox.c.id == email_id)
        ).one()
    return raw, recipient


def _mark_sent(sessions: sessionmaker[Session], email_id: int) -> None:
    """Durably `sent`, straight after the SMTP server accepted it (its copy comes later)."""
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
