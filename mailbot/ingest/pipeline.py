"""The pipeline: takes every message out of the inbox and decides where each one ends up.

One loop, a batch of UIDs at a time: fetch (IMAP) -> examine each message (recognise,
parse, triage; pure, mailbot/ingest/examine.py) -> store and respond (one commit per
batch) -> move (Processed or Quarantine) -> send what the batch queued. A message is
moved only after what was learned from it is committed, so a crash at any point leaves
it in the inbox or recorded, never lost; bytes seen again after a crash are recognised
and not recorded twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.casework import deadlines
from mailbot.config import Config
from mailbot.db import lock_for_writing
from mailbot.db.models import Disposition, MailboxState, StoredMessage, utcnow
from mailbot.devtools.failpoints import AFTER_COMMIT, failpoint
from mailbot.errors import MailboxError, describe
from mailbot.ingest.examine import Examined, examine, triage_rules
from mailbot.ingest.recognise import MessageKind
from mailbot.ingest.store import record, recorded_by_hash, recorded_by_message_id
from mailbot.logs import event
from mailbot.mailbox import mail_client
from mailbot.mailbox.fetch import TRANSIENT_ERRORS, FetchedMessage, Mailbox
from mailbot.replies.drafts import settle_sent
from mailbot.replies.outbox import SendSummary, send_due
from mailbot.replies.policy import one_version_of_templates, rejected_templates
from mailbot.replies.render import TemplateError
from mailbot.replies.respond import alert_template_problems, link_bounce, respond

log = logging.getLogger(__name__)

# What says the mailbox itself is gone (not that one message or folder was refused).
MAILBOX_LOST: tuple[type[BaseException], ...] = (MailboxError, *TRANSIENT_ERRORS)


@dataclass
class RunSummary:
    fetched: int = 0
    already_recorded: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    moved_to_processed: int = 0
    moved_to_quarantine: int = 0
    # Set when the mailbox was lost after the fetch (Sent copies, Drafts): the poll
    # itself succeeded, but the mailbox is not well.
    mailbox_error: str | None = None
    recorded_hashes: set[str] = field(default_factory=set)  # the messages this pass recorded
    new_references: list[str] = field(default_factory=list)
    sending: SendSummary | None = None

    def count(self, disposition: str) -> None:
        self.dispositions[disposition] = self.dispositions.get(disposition, 0) + 1


def _identity(item: FetchedMessage) -> str:
    """The crash-safety key: the hash of the bytes (of the header and size, when only
    the header of an oversized message was read)."""
    if item.too_large:
        return hashlib.sha256(item.raw + str(item.size).encode()).hexdigest()
    return hashlib.sha256(item.raw).hexdigest()


def _body_bytes(raw: bytes | None) -> bytes | None:
    if raw is None:
        return None
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            return body
    return b""


class Pipeline:
    """One pass over the inbox: what `run --once` and each scheduled poll do."""

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        on_server_lost: Callable[[str, str], None] | None = None,
    ) -> None:
        """ON_SERVER_LOST("mailbox" or "smtp", error) hears the moment a stage loses its
        server, whichever stage it is (the daemon's outage monitor starts its clock)."""
        self.config = config
        self.sessions = sessions
        self.on_server_lost = on_server_lost or (lambda channel, error: None)
        self.mailbox_error: str | None = None
        self.alerted_template_problems: list[str] = []
        self.unusable_templates: set[str] = set()
        self.rules = triage_rules(config)

    def run_once(self) -> RunSummary:
        settings = self.config.mailbox
        summary = RunSummary()
        started = utcnow()
        self.mailbox_error = None
        try:
            with Mailbox.connect(settings) as mailbox:
                mailbox.ensure_folders(settings.processed_folder, settings.quarantine_folder)
                uidvalidity = mailbox.select(settings.inbox)
                self._note_uidvalidity(uidvalidity)
                uids = mailbox.uids()
                size = settings.batch_size
                batches = [uids[start : start + size] for start in range(0, len(uids), size)]
                for number, batch in enumerate(batches, 1):
                    self._process_batch(mailbox, batch, uidvalidity, summary)
                    if number < len(batches):
                        # What the batch queued (an urgent alert first) goes before the
                        # next batch, not after the rest of a backlog.
                        summary.sending = self._add(summary.sending, self.send())
            self._alert_template_problems()
            self.check_deadlines()
            summary.sending = self._add(summary.sending, self.send())
            self.sync_mail_client()
        except Exception as exc:
            self._note_poll(started, error=describe(exc))
            raise
        summary.mailbox_error = self.mailbox_error
        self._note_poll(started, error=self.mailbox_error)
        event(
            log,
            logging.INFO,
            "poll_finished",
            fetched=summary.fetched,
            already_recorded=summary.already_recorded,
            processed=summary.moved_to_processed,
            quarantined=summary.moved_to_quarantine,
            **{f"disposition_{k}": v for k, v in sorted(summary.dispositions.items())},
        )
        return summary

    @staticmethod
    def _add(total: SendSummary | None, more: SendSummary | None) -> SendSummary | None:
        return total.then(more) if total is not None else more

    def _alert_template_problems(self) -> None:
        problems = sorted(
            {str(p) for p in rejected_templates(self.config.replies.override_dir)}
            | self.unusable_templates
        )
        if not problems or problems == self.alerted_template_problems:
            return
        with self.sessions() as session:
            alert_template_problems(session, self.config, problems)
            session.commit()
        self.alerted_template_problems = problems

    def check_deadlines(self) -> None:
        with self.sessions() as session:
            deadlines.check(session, self.config)
            session.commit()

    def send(self) -> SendSummary | None:
        """Send what is queued (alerts first in line, as queued). A failure here never
        undoes what was logged: it is reported, and the emails stay queued."""
        settings = self.config.mailbox
        try:
            summary = send_due(self.config, self.sessions, lambda: Mailbox.connect(settings))
        except SQLAlchemyError as exc:
            # The database failed a write: what went is in the send ledger, and the pass
            # stops loudly (the daemon's outage monitor hears of it).
            event(log, logging.ERROR, "sending_failed", error=describe(exc))
            raise
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "sending_failed",
                  error=describe(exc))
            summary = None
        if summary is not None:
            if summary.connection_error:
                self.on_server_lost("smtp", summary.connection_error)
            if summary.mailbox_error:
                self._lost_mailbox(summary.mailbox_error)
        with self.sessions() as session:
            settle_sent(session)
            session.commit()
        return summary

    def sync_mail_client(self) -> None:
        """Drafts into the Drafts folder, decided ones out, staff responses from Sent."""
        if not self.config.drafts.mailbox_drafts:
            return
        if self.mailbox_error:
            return  # lost earlier in this pass: not tried again until the next one
        try:
            with Mailbox.connect(self.config.mailbox) as mailbox:
                mail_client.sync(self.config, self.sessions, mailbox)
        except Exception as exc:  # noqa: BLE001 - the log is safe; people must know
            event(log, logging.ERROR, "mail_client_sync_failed",
                  error=describe(exc))
            if isinstance(exc, MAILBOX_LOST):
                self._lost_mailbox(describe(exc))

    def _lost_mailbox(self, error: str) -> None:
        self.mailbox_error = self.mailbox_error or error
        self.on_server_lost("mailbox", error)

    def _process_batch(
        self,
        mailbox: Mailbox,
        uids: list[int],
        uidvalidity: int | None,
        summary: RunSummary,
    ) -> None:
        """Fetch and examine a batch, store it in one transaction, then move it."""
        fetched = list(mailbox.fetch(uids))
        summary.fetched += len(fetched)
        # Examined before the transaction opens: on SQLite the write lock is then held
        # only while the batch is stored, and staff approving a draft wait less.
        examined = [
            examine(item.raw, self.config, rules=self.rules, too_large=item.too_large)
            for item in fetched
        ]
        destinations: dict[str, list[int]] = {"processed": [], "quarantine": []}
        # Recorded by an earlier pass that died before its move finished: maybe copied.
        seen_again: dict[str, list[tuple[int, str | None]]] = {"processed": [], "quarantine": []}
        # No autoflush: each message is flushed as it is recorded and when its savepoint
        # ends, so what a query needs to see is in the database already.
        with self.sessions() as session, session.no_autoflush, one_version_of_templates():
            lock_for_writing(session)
            hashes = {item.uid: _identity(item) for item in fetched}
            known = recorded_by_hash(session, hashes.values())
            earlier = recorded_by_message_id(session, (e.message_id for e in examined))
            for item, found in zip(fetched, examined, strict=True):
                sha = hashes[item.uid]
                previous = known.get(sha)
                if previous is not None:
                    summary.already_recorded += 1
                    if sha in summary.recorded_hashes:  # the same bytes twice in this pass
                        destinations[previous.destination].append(item.uid)
                    else:
                        seen_again[previous.destination].append(
                            (item.uid, previous.message_id))
                    event(log, logging.INFO, "message_seen_again", uid=item.uid,
                          message=previous.id, disposition=previous.disposition)
                    continue
                stored = self._store(session, item, found, sha, uidvalidity,
                                     earlier.get((found.message_id or "")[:998]))
                if stored is None:
                    continue  # could not even be recorded: stays in the inbox, logged
                known[sha] = stored
                summary.recorded_hashes.add(sha)
                if stored.message_id and stored.duplicate_of_id is None:
                    earlier.setdefault(stored.message_id, stored)
                destinations[stored.destination].append(item.uid)
                self._report(item, stored, summary)
            session.commit()
        failpoint(AFTER_COMMIT)
        folders = {"processed": self.config.mailbox.processed_folder,
                   "quarantine": self.config.mailbox.quarantine_folder}
        for destination, folder in folders.items():
            mailbox.move(destinations[destination], folder)
            mailbox.move_recorded(seen_again[destination], folder)
        summary.moved_to_processed += len(destinations["processed"]) + len(
            seen_again["processed"])
        summary.moved_to_quarantine += len(destinations["quarantine"]) + len(
            seen_again["quarantine"])

    def _store(
        self,
        session: Session,
        item: FetchedMessage,
        examined: Examined,
        sha: str,
        uidvalidity: int | None,
        duplicate_of: StoredMessage | None,
    ) -> StoredMessage | None:
        """Record one message and what it causes, in a savepoint of its own: a message
        the database refuses is quarantined instead, and holds back nothing else."""
        location = {
            "raw": item.raw,
            "sha256": sha,
            "size": item.size,
            "folder": self.config.mailbox.inbox,
            "uidvalidity": uidvalidity,
            "uid": item.uid,
            "received_at": item.internal_date or examined.date_header or utcnow(),
        }
        try:
            with session.begin_nested():
                # A second delivery has the same body; a different body under a reused
                # Message-ID is a different message and must not be hidden as a duplicate.
                if duplicate_of is not None and _body_bytes(duplicate_of.raw) != _body_bytes(
                    item.raw
                ):
                    duplicate_of = None
                stored = record(session, examined, duplicate_of=duplicate_of, **location)
                self._respond(session, stored, examined)
                return stored
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "message_not_recorded", uid=item.uid,
                  error=describe(exc))
            log.debug("message_not_recorded traceback", exc_info=True)
        # Keep the bytes and quarantine them rather than retry forever.
        fallback = Examined(
            kind=examined.kind,
            verified=examined.verified,
            disposition=Disposition.QUARANTINED,
            reason=f"could not be stored: {examined.reason}"[:1000],
        )
        try:
            with session.begin_nested():
                return record(session, fallback, **location)
        except Exception:  # noqa: BLE001 - it stays in the inbox; already logged
            log.debug("quarantine record failed too", exc_info=True)
            return None

    def _respond(self, session: Session, stored: StoredMessage, examined: Examined) -> None:
        if stored.contact is not None:
            try:
                respond(session, self.config, stored.contact, examined)
            except Exception as exc:  # noqa: BLE001 - the entry is kept; people must know
                event(log, logging.ERROR, "respond_failed", reference=stored.contact.reference,
                      urgency=stored.contact.urgency,
                      error=describe(exc))
                if isinstance(exc, TemplateError):
                    # No good version of a template at all: admins must hear of it.
                    self.unusable_templates.add(str(exc))
        elif examined.kind == MessageKind.BOUNCE:
            if link_bounce(session, examined):
                stored.reason = f"bounce of one of our emails; {stored.reason}"[:2000]

    def _report(self, item: FetchedMessage, stored: StoredMessage, summary: RunSummary) -> None:
        summary.count(stored.disposition)
        reference = stored.contact.reference if stored.contact else None
        if reference:
            summary.new_references.append(reference)
        event(
            log,
            logging.WARNING if stored.disposition == Disposition.QUARANTINED else logging.INFO,
            "message_recorded",
            uid=item.uid,
            message=stored.id,
            kind=stored.kind,
            verified=stored.verified,
            disposition=stored.disposition,
            reference=reference or "-",
            flags=",".join(stored.contact.flags) if stored.contact else "-",
        )

    def _note_uidvalidity(self, uidvalidity: int | None) -> None:
        folder = self.config.mailbox.inbox
        with self.sessions() as session:
            state = session.get(MailboxState, folder) or MailboxState(folder=folder)
            if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
                # UIDs were reset: harmless here (identity is the bytes' hash), but an
                # admin should know the mailbox was rebuilt or restored.
                event(log, logging.WARNING, "uidvalidity_changed", folder=folder,
                      previous=state.uidvalidity, current=uidvalidity)
            state.uidvalidity = uidvalidity
            session.add(state)
            session.commit()

    def _note_poll(self, started: datetime, error: str | None) -> None:
        folder = self.config.mailbox.inbox
        try:
            with self.sessions() as session:
                state = session.get(MailboxState, folder) or MailboxState(folder=folder)
                state.last_poll_at = started
                if error is None:
                    state.last_success_at = utcnow()
                else:
                    state.last_error = error[:2000]
                    state.last_error_at = utcnow()
                session.add(state)
                session.commit()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            log.debug("could not record poll state", exc_info=True)
