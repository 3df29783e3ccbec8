"""The daemon: runs the pipeline on a schedule until told to stop.

`run --once` is one pass and an exit code; `run` polls every `poll_interval_seconds`
with APScheduler, one pass at a time, and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.errors import MailboxError, MailboxLoginError
from mailbot.logs import event
from mailbot.pipeline import Pipeline

log = logging.getLogger(__name__)


def run_once(config: Config, sessions: sessionmaker[Session]) -> int:
    try:
        summary = Pipeline(config, sessions).run_once()
    except MailboxError as exc:
        event(log, logging.ERROR, "poll_failed", error=str(exc))
        print(f"mailbot: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"processed {summary.fetched} message(s): "
        + (", ".join(f"{n} {d}" for d, n in sorted(summary.dispositions.items())) or "none new")
        + (f"; {summary.already_recorded} already recorded" if summary.already_recorded else "")
    )
    return 0


def run_daemon(config: Config, sessions: sessionmaker[Session]) -> int:
    pipeline = Pipeline(config, sessions)
    stop = threading.Event()

    def poll() -> None:
        try:
            pipeline.run_once()
        except MailboxLoginError as exc:
            event(log, logging.ERROR, "poll_failed", error=str(exc), retry="next poll")
        except MailboxError as exc:
            event(log, logging.ERROR, "poll_failed", error=str(exc), retry="next poll")
        except Exception as exc:  # noqa: BLE001 - the daemon must outlive one bad poll
            event(log, logging.ERROR, "poll_crashed", error=f"{exc.__class__.__name__}: {exc}")
            log.debug("poll crash traceback", exc_info=True)

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        poll,
        "interval",
        seconds=config.mailbox.poll_interval_seconds,
        next_run_time=datetime.now(UTC),
        id="poll",
        max_instances=1,
        coalesce=True,
    )

    def request_stop(signum: int, _frame: object) -> None:
        event(log, logging.INFO, "stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    scheduler.start()
    event(log, logging.INFO, "daemon_started",
          poll_interval_seconds=config.mailbox.poll_interval_seconds)
    stop.wait()
    scheduler.shutdown(wait=True)
    event(log, logging.INFO, "daemon_stopped")
    return 0
