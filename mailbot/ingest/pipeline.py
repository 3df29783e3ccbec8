"""The pipeline: takes every message out of the inbox and decides where each one ends up.

fetch (IMAP, by UID) -> examine (recognise, parse, triage; pure, mailbot/ingest/examine.py) ->
store (one commit per batch) -> move (Processed or Quarantine). A message is moved only
after what was learned from it is committed, so a crash at any point leaves it in the
inbox or recorded, never lost; bytes seen again after a crash are recognised and not
recorded twice. A backlog of batches is examined in worker processes (mailbot/ingest/parallel.py)
while this process stores the batch before.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mailbot.casework import deadlines
from mailbot.config import Config
from mailbot.db.models import Disposition, MailboxState, StoredMessage, utcnow
from mailbot.devtools.failpoints import AFTER_COMMIT, failpoint
from mailbot.ingest.examine import Examined, triage_rules
from mailbot.ingest.parallel import ExaminePool, PendingBatch, worker_count
from mailbot.ingest.recognise import MessageKind
from mailbot.ingest.store import record, recorded_by_hash, recorded_by_message_id
from mailbot.logs import event, lines_held
from mailbot.mailbox import mail_client
from mailbot.mailbox.fetch import FetchedMessage, Mailbox
from mailbot.replies.drafts import settle_sent
from mailbot.replies.outbox import SendSummary, send_due
from mailbot.replies.policy import one_version_of_templates, rejected_templates
from mailbot.replies.render import TemplateError
from mailbot.replies.respond import alert_template_problems, link_bounce, respond

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    fetched: int = 0
    already_recorded: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    moved_to_processed: int = 0
    moved_to_quarantine: int = 0
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


class _BacklogSender:
    """Sends what each committed batch of a backlog queued, on a thread of its own, while
    the next batch is stored: an urgent alert goes out as the backlog is worked through,
    not after all of it, and sending mostly waits on servers. One pass at a time, each
    sending (and marking) all it claims, as the outbox's exactly-once rules want; the run's
    own pass afterwards sends the rest. A mail server that cannot be reached ends it."""

    # Each email is a dozen waits on a socket or the database, and after each one this
    # thread must win the interpreter back from the one storing batches. With Python's
    # 5 ms switch interval an email took about 60 ms instead of 7; 2 ms measured best
    # (0.5 ms slowed the storing more than it sped the sending).
    SWITCH_INTERVAL = 0.002

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.summary = SendSummary()
        self.wanted = threading.Event()
        self.finishing = False
        self.switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.SWITCH_INTERVAL)
        self.thread = threading.Thread(target=self._run, name="backlog-sender", daemon=True)
        self.thread.start()

    def batch_committed(self) -> None:
        self.wanted.set()

    def finish(self) -> SendSummary:
        self.finishing = True
        self.wanted.set()
        self.thread.join()
        sys.setswitchinterval(self.switch_interval)
        return self.summary

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.finishing:
                return
            sent = self.pipeline._send_queued()
            if sent is None or sent.connection_error:
                return  # said in the log; the run's own pass tries once more
            self.summary = self.summary.then(sent)


class Pipeline:
    """One pass over the inbox: what `run --once` and each scheduled poll do."""

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.alerted_template_problems: list[str] = []
        self.unusable_templates: set[str] = set()
        self.rules = triage_rules(config)

    def run_once(self) -> RunSummary:
        settings = self.config.mailbox
        summary = RunSummary()
        started = utcnow()
        try:
            # Sending and the mail-client pass touch different rows and folders, each on
            # its own connections, and mostly wait on a server: they run side by side,
            # the pass from the moment the last batch is stored.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-client") as beside:
                mail_client_pass: list[Future[None]] = []

                def inbox_done() -> None:
                    mail_client_pass.append(beside.submit(self.sync_mail_client))

                with Mailbox.connect(settings) as mailbox:
                    mailbox.ensure_folders(settings.processed_folder, settings.quarantine_folder)
                    uidvalidity = mailbox.select(settings.inbox)
                    self._note_uidvalidity(uidvalidity)
                    self._process_inbox(mailbox, uidvalidity, summary, inbox_done)
                self._alert_template_problems()
                self.check_deadlines()
                sending = self.send()
                for done in mail_client_pass:
                    done.result()
            summary.sending = summary.sending.then(sending) if summary.sending else sending
        except Exception as exc:
            self._note_poll(started, error=f"{exc.__class__.__name__}: {exc}")
            raise
        self._note_poll(started, error=None)
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
        summary = self._send_queued()
        with self.sessions() as session:
            settle_sent(session)
            session.commit()
        return summary

    def _send_queued(self) -> SendSummary | None:
        settings = self.config.mailbox
        try:
            return send_due(self.config, self.sessions, lambda: Mailbox.connect(settings))
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "sending_failed",
                  error=f"{exc.__class__.__name__}: {exc}"[:500])
            return None

    def sync_mail_client(self) -> None:
        """Drafts into the Drafts folder, decided ones out, staff responses from Sent."""
        if not self.config.drafts.mailbox_drafts:
            return
        try:
            with Mailbox.connect(self.config.mailbox) as mailbox:
                mail_client.sync(self.config, self.sessions, mailbox)
        except Exception as exc:  # noqa: BLE001 - the log is safe; people must know
            event(log, logging.ERROR, "mail_client_sync_failed",
                  error=f"{exc.__class__.__name__}: {exc}"[:500])

    def _process_inbox(
        self,
        mailbox: Mailbox,
        uidvalidity: int | None,
        summary: RunSummary,
        inbox_done: Callable[[], None],
    ) -> None:
        """Every message in the inbox, a batch at a time. With a backlog, the pool examines
        each batch while this process stores the one before; what no worker has started
        when this process needs it (the first batch, while they start) it does itself.
        `inbox_done` is called once the last batch is stored, before its replies go."""
        uids = mailbox.uids()
        size = self.config.mailbox.batch_size
        batches = [uids[start : start + size] for start in range(0, len(uids), size)]
        workers = worker_count(self.config) if len(batches) > 1 else 0
        sender = _BacklogSender(self) if len(batches) > 1 else None
        try:
            with ExaminePool(self.config, self.rules, workers) as pool:
                waiting: tuple[list[FetchedMessage], PendingBatch] | None = None
                for batch in batches:
                    fetched = list(mailbox.fetch(batch))
                    summary.fetched += len(fetched)
                    work = [(item.raw, item.too_large) for item in fetched]
                    pending = pool.submit(work)
                    if waiting is not None:
                        self._process_batch(mailbox, *waiting, pool, uidvalidity, summary)
                        if sender is not None:
                            sender.batch_committed()
                    waiting = (fetched, pending)
                if waiting is not None:
                    self._process_batch(mailbox, *waiting, pool, uidvalidity, summary)
            inbox_done()
        finally:
            if sender is not None:
                summary.sending = sender.finish()

    def _process_batch(
        self,
        mailbox: Mailbox,
        fetched: list[FetchedMessage],
        pending: PendingBatch,
        pool: ExaminePool,
        uidvalidity: int | None,
        summary: RunSummary,
    ) -> None:
        with lines_held():
            self._store_and_move(mailbox, fetched, pool.results(pending), uidvalidity,
                                 summary)

    def _store_and_move(
        self,
        mailbox: Mailbox,
        fetched: list[FetchedMessage],
        examined: list[Examined],
        uidvalidity: int | None,
        summary: RunSummary,
    ) -> None:
        settings = self.config.mailbox
        destinations: dict[str, list[int]] = {"processed": [], "quarantine": []}
        with self.sessions() as session, one_version_of_templates():
            hashes = {f.uid: _identity(f) for f in fetched}
            known = recorded_by_hash(session, hashes.values())
            new: list[tuple[FetchedMessage, Examined]] = []
            for item, found in zip(fetched, examined, strict=True):
                previous = known.get(hashes[item.uid])
                if previous is not None:
                    summary.already_recorded += 1
                    destinations[previous.destination].append(item.uid)
                    event(log, logging.INFO, "message_seen_again", uid=item.uid,
                          message=previous.id, disposition=previous.disposition)
                    continue
                new.append((item, found))
            for item, stored in self._store(session, new, hashes, known, uidvalidity):
                if stored is None:
                    continue  # could not even be recorded: stays in the inbox, logged
                destinations[stored.destination].append(item.uid)
                self._report(item, stored, summary)
            session.commit()
        failpoint(AFTER_COMMIT)
        mailbox.move(destinations["processed"], settings.processed_folder)
        mailbox.move(destinations["quarantine"], settings.quarantine_folder)
        summary.moved_to_processed += len(destinations["processed"])
        summary.moved_to_quarantine += len(destinations["quarantine"])

    def _store(
        self,
        session: Session,
        new: list[tuple[FetchedMessage, Examined]],
        hashes: dict[int, str],
        known: dict[str, StoredMessage],
        uidvalidity: int | None,
    ) -> list[tuple[FetchedMessage, StoredMessage | None]]:
        """Record a batch with one flush; if that fails, one message at a time, so a
        message the database refuses cannot hold back the others."""
        earlier = recorded_by_message_id(session, (e.message_id for _, e in new))
        try:
            self._prepare_batch(session, new)
            # Built without a flush, then written by one. On SQLite the transaction so
            # opens with a write, and holds the write lock for the flush and the commit
            # only: sending (or staff approving a draft) can commit meanwhile.
            with session.no_autoflush:
                results = self._record_all(session, new, hashes, dict(known), earlier,
                                           uidvalidity, isolate=False)
            session.flush()
            known.update({hashes[item.uid]: s for item, s in results if s is not None})
            return results
        except Exception:  # noqa: BLE001 - retried below, one message at a time
            log.debug("batch insert failed; recording one at a time", exc_info=True)
            session.rollback()
            session.info.clear()  # what was cached belonged to the transaction undone
        finally:
            deadlines.end_batch(session)
        earlier = recorded_by_message_id(session, (e.message_id for _, e in new))
        try:
            self._prepare_batch(session, new)
            return self._record_all(session, new, hashes, known, earlier, uidvalidity,
                                    isolate=True)
        finally:
            deadlines.end_batch(session)

    def _prepare_batch(
        self, session: Session, new: list[tuple[FetchedMessage, Examined]]
    ) -> None:
        numbers = {e.contact.prisoner.number for _, e in new
                   if e.contact is not None and e.contact.prisoner.number}
        received = [item.internal_date or e.date_header or utcnow() for item, e in new]
        if received:
            deadlines.prepare_batch(session, self.config, numbers, min(received))

    def _record_all(
        self,
        session: Session,
        new: list[tuple[FetchedMessage, Examined]],
        hashes: dict[int, str],
        known: dict[str, StoredMessage],
        earlier: dict[str, StoredMessage],
        uidvalidity: int | None,
        *,
        isolate: bool,
    ) -> list[tuple[FetchedMessage, StoredMessage | None]]:
        results: list[tuple[FetchedMessage, StoredMessage | None]] = []
        for item, examined in new:
            sha = hashes[item.uid]
            if sha in known:  # the very same bytes twice in one batch
                results.append((item, known[sha]))
                continue
            duplicate_of = earlier.get(examined.message_id) if examined.message_id else None
            # A second delivery has the same body; a different body under a reused
            # Message-ID is a different message and must not be hidden as a duplicate.
            if duplicate_of is not None and _body_bytes(duplicate_of.raw) != _body_bytes(
                item.raw
            ):
                duplicate_of = None
            location = {
                "raw": item.raw,
                "sha256": sha,
                "size": item.size,
                "folder": self.config.mailbox.inbox,
                "uidvalidity": uidvalidity,
                "uid": item.uid,
                "received_at": item.internal_date or examined.date_header or utcnow(),
            }
            if isolate:
                stored = self._record_isolated(session, item, examined, duplicate_of, location)
            else:
                stored = self._record_one(session, examined, duplicate_of, location,
                                          flush=False)
            results.append((item, stored))
            if stored is None:
                continue
            known[sha] = stored
            if stored.message_id and duplicate_of is None:
                earlier.setdefault(stored.message_id, stored)
        return results

    def _record_one(
        self,
        session: Session,
        examined: Examined,
        duplicate_of: StoredMessage | None,
        location: dict,  # type: ignore[type-arg]
        *,
        flush: bool = True,
    ) -> StoredMessage:
        stored = record(session, examined, duplicate_of=duplicate_of, flush=flush, **location)
        if stored.contact is not None:
            try:
                respond(session, self.config, stored.contact, examined)
            except Exception as exc:  # noqa: BLE001 - the entry is kept; people must know
                event(log, logging.ERROR, "respond_failed", reference=stored.contact.reference,
                      urgency=stored.contact.urgency,
                      error=f"{exc.__class__.__name__}: {exc}"[:500])
                if isinstance(exc, TemplateError):
                    # No good version of a template at all: admins must hear of it.
                    self.unusable_templates.add(str(exc))
        elif examined.kind == MessageKind.BOUNCE:
            if link_bounce(session, examined):
                stored.reason = f"bounce of one of our emails; {stored.reason}"[:2000]
        return stored

    def _record_isolated(
        self,
        session: Session,
        item: FetchedMessage,
        examined: Examined,
        duplicate_of: StoredMessage | None,
        location: dict,  # type: ignore[type-arg]
    ) -> StoredMessage | None:
        try:
            with session.begin_nested():
                return self._record_one(session, examined, duplicate_of, location)
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "message_not_recorded", uid=item.uid,
                  error=f"{exc.__class__.__name__}: {exc}"[:500])
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
