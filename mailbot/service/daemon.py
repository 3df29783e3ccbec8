"""The daemon: decides when each job runs, until told to stop.

`run --once` is one pass (poll, deadlines, send) and an exit code. `run` keeps going:
an APScheduler job polls every `poll_interval_seconds` (the safety net), an IMAP IDLE
connection wakes a poll within seconds of new mail, another job checks deadlines every
few minutes, and systemd hears READY, a watchdog heartbeat and a status line. Jobs run
one at a time. SIGTERM or SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sdnotify
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.errors import MailboxError
from mailbot.ingest.pipeline import Pipeline, RunSummary
from mailbot.logs import event
from mailbot.replies.outbox import SendSummary
from mailbot.service.health import DATABASE, MAILBOX, SMTP, OutageMonitor

log = logging.getLogger(__name__)

OUTAGE_TICK_SECONDS = 5


def run_once(
    config: Config,
    sessions: sessionmaker[Session],
    judge: Callable[[RunSummary], int] | None = None,
) -> int:
    """One pass and its exit code: the mailbox's error's, else what `judge` (the command
    line's) makes of the pass's summary, else 0."""
    pipeline = Pipeline(config, sessions)
    try:
        summary = pipeline.run_once()
    except MailboxError as exc:
        event(log, logging.ERROR, "poll_failed", error=str(exc))
        print(f"mailbot: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"processed {summary.fetched} message(s): "
        + (", ".join(f"{n} {d}" for d, n in sorted(summary.dispositions.items())) or "none new")
        + (f"; {summary.already_recorded} already recorded" if summary.already_recorded else "")
    )
    return judge(summary) if judge is not None else 0


class Daemon:
    def __init__(self, config: Config, sessions: sessionmaker[Session]) -> None:
        self.config = config
        self.systemd = sdnotify.SystemdNotifier()
        self.monitor = OutageMonitor(config, sessions, notify_status=self._status)
        self.pipeline = Pipeline(config, sessions, on_server_lost=self.monitor.record)
        self.one_at_a_time = threading.Lock()
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.idle = None

    def poll(self) -> None:
        with self.one_at_a_time:
            if self.stopping.is_set():
                return
            try:
                summary = self.pipeline.run_once()
            except MailboxError as exc:
                event(log, logging.ERROR, "poll_failed", error=str(exc), retry="next poll")
                self.monitor.record(MAILBOX, str(exc))
                return
            except SQLAlchemyError as exc:
                event(log, logging.ERROR, "database_unavailable",
                      error=f"{exc.__class__.__name__}: {exc}"[:500], retry="next poll")
                self.monitor.record(DATABASE, f"{exc.__class__.__name__}: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - the daemon must outlive one bad poll
                event(log, logging.ERROR, "poll_crashed",
                      error=f"{exc.__class__.__name__}: {exc}"[:500])
                log.debug("poll crash traceback", exc_info=True)
                self.monitor.record(MAILBOX, f"{exc.__class__.__name__}: {exc}")
                return
            self.monitor.record(MAILBOX, summary.mailbox_error)
            self.monitor.record(DATABASE, None)
            self._note_smtp(summary.sending)
            self._status(f"last poll {datetime.now(UTC):%H:%M:%S} UTC: "
                         f"{summary.fetched} message(s)")

    def watch_deadlines(self) -> None:
        with self.one_at_a_time:
            if self.stopping.is_set():
                return
            try:
                self.pipeline.check_deadlines()
                self._note_smtp(self.pipeline.send())
            except Exception as exc:  # noqa: BLE001
                event(log, logging.ERROR, "deadline_check_failed",
                      error=f"{exc.__class__.__name__}: {exc}"[:500])

    def apply_retention(self) -> None:
        from mailbot.casework import retention
        with self.one_at_a_time:
            try:
                with self.pipeline.sessions() as session:
                    retention.apply(session, self.config)
                    session.commit()
            except Exception as exc:  # noqa: BLE001
                event(log, logging.ERROR, "retention_failed",
                      error=f"{exc.__class__.__name__}: {exc}"[:500])

    def wake(self) -> None:
        """New mail announced by IDLE: poll now (after any pass already running)."""
        if not self.stopping.is_set():
            self.scheduler.add_job(self.poll, id="poll-now", replace_existing=True,
                                   max_instances=1, misfire_grace_time=None)

    def _idle_state(self, state: str, error: str | None) -> None:
        """The IDLE connection is the first to notice the mailbox going or coming back."""
        if state == "disconnected" and error:
            self.monitor.record(MAILBOX, error)
        elif state == "connected" and self.monitor.channels[MAILBOX].down_since:
            self.wake()  # a poll confirms (or not) that the mailbox is back

    def _note_smtp(self, sending: SendSummary | None) -> None:
        if sending is None:
            return
        if sending.connection_error:
            self.monitor.record(SMTP, sending.connection_error)
        elif sending.sent or sending.failed or sending.retrying:
            self.monitor.record(SMTP, None)

    def _status(self, text: str) -> None:
        self.systemd.notify(f"STATUS={text}")

    def run(self) -> int:
        settings = self.config.mailbox
        self.scheduler.add_job(self.poll, "interval", seconds=settings.poll_interval_seconds,
                               next_run_time=datetime.now(UTC), id="poll", max_instances=1,
                               coalesce=True)
        self.scheduler.add_job(self.watch_deadlines, "interval",
                               minutes=self.config.deadlines.check_interval_minutes,
                               id="deadlines", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.apply_retention, "interval", hours=24,
                               next_run_time=datetime.now(UTC), id="retention",
                               max_instances=1, coalesce=True)
        # Heartbeat for systemd's WatchdogSec: only while the scheduler thread is alive.
        self.scheduler.add_job(lambda: self.systemd.notify("WATCHDOG=1"), "interval",
                               seconds=10, id="watchdog")
        # An outage is alerted when it passes [alerts] outage_minutes, not at the next
        # poll after that; a tick only looks at what the monitor already knows.
        self.scheduler.add_job(self.monitor.tick, "interval", seconds=OUTAGE_TICK_SECONDS,
                               id="outage-tick", max_instances=1, coalesce=True)

        def request_stop(signum: int, _frame: object) -> None:
            event(log, logging.INFO, "stop_requested", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.scheduler.start()
        if settings.idle:
            from mailbot.mailbox.idle import IdleWatcher

            self.idle = IdleWatcher(settings, settings.inbox, self.wake,
                                    on_state=self._idle_state)
            self.idle.start()
        self.systemd.notify("READY=1")
        event(log, logging.INFO, "daemon_started",
              poll_interval_seconds=settings.poll_interval_seconds, idle=settings.idle)
        self.stopping.wait()
        self.systemd.notify("STOPPING=1")
        if self.idle is not None:
            self.idle.stop()
        self.scheduler.shutdown(wait=True)
        event(log, logging.INFO, "daemon_stopped")
        return 0


def run_daemon(config: Config, sessions: sessionmaker[Session]) -> int:
    return Daemon(config, sessions).run()
