"""Health: decides whether mailbot is working, and makes sure people hear when it is not.

`mailbot status` reports the last successful poll, the last error, the inbox and
quarantine counts, the outbox queue, drafts waiting and concerns by time left, and exits
non-zero when unhealthy; a sign-in that fails (a refused OAuth2 token, an expired client
secret) is shown with the line that says what to fix. While the daemon runs,
`OutageMonitor` watches the mailbox and the mail server: one unreachable for longer than
`[alerts] outage_minutes` is logged at ERROR every interval and reported once through
whichever channel still works (an email when only the mailbox is down; the log and
systemd's status line when mail cannot be sent); its recovery is reported once.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.casework.deadlines import hours_left, is_open
from mailbot.config import Config
from mailbot.db.models import Contact, Draft, MailboxState, OutboxEmail, utcnow
from mailbot.errors import MailboxError, MailboxLoginError, SignInError, describe
from mailbot.logs import event
from mailbot.mailbox.fetch import Mailbox
from mailbot.mailbox.smtp import SmtpConnection
from mailbot.parsers.mime import POLICY, WIRE_POLICY
from mailbot.replies.drafts import Status as DraftStatus
from mailbot.replies.outbox import Kind, enqueue, send_due
from mailbot.replies.policy import render_alert
from mailbot.replies.render import RenderedEmail, TemplateError

log = logging.getLogger(__name__)

MAILBOX, SMTP, DATABASE = "mailbox", "smtp", "database"


@dataclass
class Report:
    healthy: bool
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # The mailbox or the mail server refused to sign mailbot in (a password refused, an
    # OAuth2 token or client secret refused): retrying will not help, people must act.
    sign_in_failed: bool = False

    @property
    def exit_code(self) -> int:
        """`mailbot status`'s: 0 healthy, 3 (as `run --once`) when a sign-in failed, else 1."""
        if self.sign_in_failed:
            return MailboxError.exit_code
        return 0 if self.healthy else 1


def status(config: Config, sessions: sessionmaker[Session], *, probe: bool = True) -> Report:
    report = Report(healthy=True)
    now = utcnow()
    stale_after = timedelta(
        seconds=max(3 * config.mailbox.poll_interval_seconds, config.alerts.outage_minutes * 60)
    )
    with sessions() as session:
        state = session.get(MailboxState, config.mailbox.inbox)
        last_success = state.last_success_at if state else None
        report.lines.append(f"last successful poll: {_ago(last_success, now)}")
        if state and state.last_error_at:
            report.lines.append(f"last error: {_ago(state.last_error_at, now)}: {state.last_error}")
        if last_success is None or now - last_success > stale_after:
            report.problems.append(f"no successful poll in the last {stale_after}")
        if state and state.last_error_at and (
            last_success is None or state.last_error_at > last_success
        ):
            report.problems.append("the last poll failed")
        _outbox_lines(session, report)
        _concern_lines(session, config, report, now)
    if probe:
        _probe_mailbox(config, report, sessions)
        _probe_smtp(config, report)
    report.healthy = not report.problems
    return report


def _outbox_lines(session: Session, report: Report) -> None:
    counts = dict(
        session.execute(
            select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status)
        ).all()
    )
    queued, failed = counts.get("queued", 0) + counts.get("sending", 0), counts.get("failed", 0)
    report.lines.append(f"outbox: {queued} waiting to send, {failed} failed, "
                        f"{counts.get('sent', 0)} sent")
    if failed:
        report.problems.append(f"{failed} email(s) failed: see the outbox")
    drafts = dict(
        session.execute(
            select(Draft.status, func.count())
            .where(Draft.status.in_((DraftStatus.DRAFT, DraftStatus.APPROVED)))
            .group_by(Draft.status)
        ).all()
    )
    # An approved draft is not a response until the mail server has accepted it: while it
    # waits in the outbox the concern's 72-hour clock keeps running, so say so apart.
    report.lines.append(f"drafts awaiting approval: {drafts.get(DraftStatus.DRAFT, 0)}; "
                        f"approved, not yet sent: {drafts.get(DraftStatus.APPROVED, 0)}")


def _concern_lines(session: Session, config: Config, report: Report, now: datetime) -> None:
    contacts = session.execute(
        select(Contact)
        .where(Contact.is_safer_custody.is_(True))
        .where(Contact.responded_at.is_(None))
    ).scalars()
    buckets = {"overdue": [], "under 6 hours": [], "under 24 hours": [], "later": []}
    for contact in contacts:
        if not is_open(contact):
            continue
        left = hours_left(contact, config, now)
        key = ("overdue" if left <= 0 else "under 6 hours" if left < 6
               else "under 24 hours" if left < 24 else "later")
        buckets[key].append((left, contact.reference))
    summary = ", ".join(f"{len(v)} {k}" for k, v in buckets.items())
    report.lines.append(f"concerns without a response: {summary}")
    for key in ("overdue", "under 6 hours"):
        for left, reference in sorted(buckets[key]):
            report.lines.append(f"  {reference}: {left:+.1f} hours")


def _probe_mailbox(config: Config, report: Report,
                   sessions: sessionmaker[Session] | None = None) -> None:
    settings = config.mailbox
    try:
        mailbox = Mailbox.connect(settings, sleep=lambda _: None)
    except MailboxLoginError as exc:  # the line says what to fix
        report.problems.append(f"mailbox sign-in failed: {exc}")
        report.sign_in_failed = True
        return
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"mailbox unreachable: {exc}")
        return
    with mailbox:
        counts = []
        for folder in (settings.inbox, settings.quarantine_folder):
            if mailbox.client.folder.exists(folder):
                counts.append(f"{folder} {mailbox.client.folder.status(folder)['MESSAGES']}")
            else:
                counts.append(f"{folder} 0")
        report.lines.append("mailbox: " + ", ".join(counts))
        if sessions is not None:
            _drafts_taken_unseen(config, sessions, mailbox, report)


# Drafts placed in the mailbox this long ago and gone from Drafts, with nothing staff sent
# found in Sent since: the sign that Outlook files what staff send elsewhere.
DRAFTS_TAKEN_AFTER = timedelta(days=2)
DRAFTS_LOOKED_UP = 20  # a header search each, on every `status`


def _drafts_taken_unseen(config: Config, sessions: sessionmaker[Session], mailbox: Mailbox,
                         report: Report) -> None:
    """Staff took mailbot's drafts out of Drafts (sent them from Outlook, most likely) but
    no staff mail has turned up in Sent: Exchange files mail sent as a shared mailbox in
    the sender's own Sent Items unless the mailbox keeps a copy, and then mailbot never
    sees the response and the concern's clock keeps running."""
    from mailbot.casework.audit import MAILBOT
    from mailbot.db.models import AuditEvent
    from mailbot.mailbox.mail_client import STAFF_MAIL

    if not config.drafts.mailbox_drafts:
        return
    cutoff = utcnow() - DRAFTS_TAKEN_AFTER
    with sessions() as session:
        placed = session.execute(
            select(Draft.message_id, Draft.created_at)
            .where(Draft.status == "draft", Draft.mailbox_copy == "placed",
                   Draft.created_at <= cutoff)
            .order_by(Draft.created_at.desc()).limit(DRAFTS_LOOKED_UP)
        ).all()
        if not placed:
            return
        since = min(created for _, created in placed)
        found = session.scalar(
            select(func.count()).select_from(AuditEvent)
            .where(AuditEvent.at >= since, AuditEvent.actor != MAILBOT,
                   AuditEvent.action.in_(("draft_sent", STAFF_MAIL)))
        )
    from mailbot.mailbox.mail_client import drafts_folder

    folder = drafts_folder(config, mailbox)
    if found or not mailbox.client.folder.exists(folder):
        return
    taken = [mid for mid, _ in placed if not mailbox.uids_with_message_id(folder, mid)]
    if taken:
        report.problems.append(
            f"{len(taken)} draft(s) mailbot placed in {folder!r} over "
            f"{DRAFTS_TAKEN_AFTER.days} days ago are gone from it, yet nothing staff sent "
            f"has been found in {mailbox.sent_folder!r} since: if staff send as the "
            f"shared mailbox from Outlook, have Exchange keep a copy there (Set-Mailbox "
            f"-MessageCopyForSentAsEnabled $true, docs/microsoft-365.md) or approve with "
            f"`mailbot drafts approve`"
        )


def _probe_smtp(config: Config, report: Report) -> None:
    try:
        SmtpConnection(config).close()
        report.lines.append("mail server: reachable")
    except SignInError as exc:
        report.problems.append(f"mail server sign-in failed: {exc}")
        report.sign_in_failed = True
    except smtplib.SMTPAuthenticationError as exc:
        smtp = config.smtp
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        report.problems.append(
            f"mail server sign-in failed: the mail server at {smtp.host}:{smtp.port} refused "
            f"the password for {smtp.username} ({exc.smtp_code} {' '.join(reply.split())}"
            f"): check [smtp] username and password_file / password_env")
        report.sign_in_failed = True
    except (OSError, smtplib.SMTPException) as exc:
        report.problems.append(f"mail server unreachable: {exc.__class__.__name__}: {exc}")


def mailbox_check(config: Config) -> Report:
    """`mailbot mailbox check`: sign in to the mailbox and the mail server as configured,
    create the folders mailbot would create on its first pass (Processed, Quarantine...),
    and survey the folders it will use. Sends nothing. A sign-in that fails, or a folder
    the server will not create, raises its error (exit code 3); a folder problem makes
    the report unhealthy."""
    from mailbot.mailbox import folders

    report = Report(healthy=True)
    settings = config.mailbox
    with Mailbox.connect(settings, sleep=lambda _: None) as mailbox:
        report.lines.append(f"mailbox: signed in to {settings.host}:{settings.port} as "
                            f"{settings.username} ({_method(settings.auth, settings.oauth2)})")
        created = mailbox.ensure_folders(*folders.folders_to_create(config, mailbox))
        checks = folders.survey(config, mailbox, created)
    smtp = config.smtp
    try:
        SmtpConnection(config).close()
    except (OSError, smtplib.SMTPException) as exc:
        raise MailboxError(f"the mail server at {smtp.host}:{smtp.port} refused or could not "
                           f"be reached ({describe(exc)}); check [smtp]") from exc
    report.lines.append(
        f"mail server: signed in to {smtp.host}:{smtp.port} as {smtp.login} "
        f"({_method(smtp.auth, config.smtp_oauth2)})" if smtp.login
        else f"mail server: connected to {smtp.host}:{smtp.port} (no sign-in configured)")
    report.lines.append("folders:")
    for check in checks:
        report.lines.append("  " + check.line())
        if check.problem:
            report.problems.append(f"{check.use} folder: {check.problem}")
    report.lines.append("nothing was sent")
    report.healthy = not report.problems
    return report


def _method(auth: str, oauth2: Any) -> str:
    return f"OAuth2, {oauth2.provider}" if auth == "oauth2" and oauth2 is not None else auth


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    minutes = int((now - moment).total_seconds() // 60)
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')} UTC ({minutes} min ago)"


@dataclass
class _Channel:
    down_since: datetime | None = None
    alerted: bool = False
    last_error: str = ""


class OutageMonitor:
    """Remembers since when the mailbox or mail server has been unreachable."""

    def __init__(self, config: Config, sessions: sessionmaker[Session],
                 notify_status: Any = None) -> None:
        self.config = config
        self.sessions = sessions
        self.channels = {MAILBOX: _Channel(), SMTP: _Channel(), DATABASE: _Channel()}
        self.notify_status = notify_status or (lambda text: None)
        # The poll, the IDLE thread and the tick all report: one at a time.
        self.lock = threading.RLock()

    def record(self, channel: str, error: str | None, now: datetime | None = None) -> None:
        with self.lock:
            self._record(channel, error, now)

    def _record(self, channel: str, error: str | None, now: datetime | None) -> None:
        now = now or utcnow()
        state = self.channels[channel]
        if error is None:
            self.channels[channel] = _Channel()
            if state.alerted:
                minutes = int((now - state.down_since).total_seconds() // 60)
                event(log, logging.WARNING, "outage_over", channel=channel, minutes=minutes)
                self._tell(self._render("outage_over", channel=channel, minutes=minutes))
                self.notify_status(f"{channel} reachable again")
            return
        if state.down_since is None:
            state.down_since = now
        state.last_error = error
        threshold = timedelta(minutes=self.config.alerts.outage_minutes)
        if now - state.down_since < threshold:
            return
        event(log, logging.ERROR, "outage", channel=channel,
              since=state.down_since.isoformat(), error=error[:300])
        self.notify_status(f"{channel} unreachable since {state.down_since:%H:%M} UTC")
        if not state.alerted:
            state.alerted = True
            self._tell(self._render(
                "outage", channel=channel, since=f"{state.down_since:%Y-%m-%d %H:%M}",
                since_time=f"{state.down_since:%H:%M}", error=error[:500],
            ))

    def tick(self, now: datetime | None = None) -> None:
        """Raise the alert for any channel that has now been down past the threshold,
        though nothing has tried it since: an outage is alerted on time even when the
        next poll is a while off."""
        with self.lock:
            for channel, state in list(self.channels.items()):
                if state.down_since is not None and not state.alerted:
                    self._record(channel, state.last_error, now)

    def _render(self, name: str, **context: Any) -> RenderedEmail:
        """The alert in the words of `templates/alerts/NAME`; should even the last good
        version be unusable, a bare line, since staff must hear of an outage regardless."""
        try:
            return render_alert(name, context, override_dir=self.config.replies.override_dir)
        except TemplateError as exc:
            event(log, logging.ERROR, "outage_alert_template_unusable", template=name,
                  error=str(exc)[:300])
            line = f"mailbot: {name.replace('_', ' ')}: the {context['channel']}"
            return RenderedEmail(subject=line, text=line + "\n", html=None)

    def _tell(self, rendered: RenderedEmail) -> None:
        """Email the safety team the alert (`templates/alerts/outage*`); when the mail
        server is the thing that is down, leave it in the mailbox itself, where staff read
        their mail."""
        subject, text = rendered.subject, rendered.text
        # Email needs both the mail server and the database (the outbox).
        if self.channels[SMTP].down_since or self.channels[DATABASE].down_since:
            if self.channels[MAILBOX].down_since is None:
                self._leave_in_mailbox(subject, text)
            return
        if not self.config.alerts.safety_team:
            return
        try:
            with self.sessions() as session:
                for recipient in self.config.alerts.safety_team:
                    enqueue(session, self.config, kind=Kind.OUTAGE_ALERT, to=recipient,
                            subject=subject, text=text, auto_submitted="auto-generated")
                session.commit()
            mailbox_up = self.channels[MAILBOX].down_since is None
            send_due(self.config, self.sessions,
                     (lambda: Mailbox.connect(self.config.mailbox)) if mailbox_up else None)
        except Exception as exc:  # noqa: BLE001 - the log line above already said it
            event(log, logging.ERROR, "outage_alert_not_sent", error=exc.__class__.__name__)

    def _leave_in_mailbox(self, subject: str, text: str) -> None:
        folder = self.config.alerts.mailbox_folder
        msg = EmailMessage(policy=POLICY)
        msg["From"] = self.config.smtp.from_address
        msg["To"] = self.config.mailbox.username
        msg["Subject"] = subject
        msg["Date"] = format_datetime(utcnow())
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        try:
            with Mailbox.connect(self.config.mailbox) as mailbox:
                mailbox.ensure_folders(folder)
                mailbox.append(msg.as_bytes(policy=WIRE_POLICY), folder,
                               flags=())
            event(log, logging.WARNING, "outage_alert_left_in_mailbox", folder=folder)
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "outage_alert_not_sent", error=exc.__class__.__name__)
