"""The send ledger: how far each email got with the mail server, in a write no database
lock can hold up.

SMTP cannot be asked "did you already take this one?", so after a crash mailbot must know
by itself whether an email it had claimed (`sending`) reached the server. The database
cannot tell it reliably: the write after the server's 250 can wait behind a batch for
SQLite's lock, or fail because the database is read-only or full, and the row then stays
`sending` although the email went. So two steps are appended, each fsync'd, to a small
file in the state directory, and only then is the database told:

* `handing_over`, just before the message's data goes to the server (after MAIL and
  RCPT were accepted): from here the server may deliver it;
* `accepted`, the moment the server has answered 250;
* `refused`, when the server answered the data with a 4xx or 5xx.

Recovery reads the last step of each email left `sending`: `accepted` means it went;
none (or `refused`) means it never reached the server and may go again; `handing_over`
alone means the process died while the server was receiving it, or in the microseconds
between the 250 and its record, and nobody can know whether it was delivered. Such an
email to a family is not sent again (no email exists twice): it is marked failed,
with the reason, for staff to check; an alert to staff is sent again, because a second
copy of an alert harms nobody and a lost one might.

Only one process sends at a time: the daemon and a member of staff approving from a
shell each hold `sending()`, an exclusive `flock` that the kernel releases when its holder
dies. So an email found `sending` by the holder was left so by a process that is gone,
and recovery never takes over an email another process is still sending. Entries are
needed only while their email is `sending`; `compact()` drops the rest.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from mailbot.errors import MailbotError

LEDGER_NAME = "send-ledger"
LOCK_NAME = "send.lock"


class Step(StrEnum):
    HANDING_OVER = "handing_over"
    ACCEPTED = "accepted"
    REFUSED = "refused"


class LedgerError(MailbotError):
    """The ledger cannot be written: nothing may be sent until it can."""


class SendLedger:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LEDGER_NAME

    @contextmanager
    def sending(self, wait_seconds: float) -> Iterator[bool]:
        """Hold the right to send (yields True), or yield False if another process held it
        for all of WAIT_SECONDS."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / LOCK_NAME, "a") as lock:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def check_writable(self) -> None:
        """Raise LedgerError unless a step could be recorded now."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked("a"):
                pass
        except OSError as exc:
            raise LedgerError(
                f"cannot write the send ledger {self.path}: {exc.strerror}; nothing is sent "
                "until it can be (is [state] directory writable by this user?)"
            ) from exc

    def note(self, message_id: str, step: Step) -> None:
        """Append one step, durably, before returning."""
        line = f"{message_id}\t{step}\t{datetime.now(UTC).isoformat()}\n"
        try:
            with self._locked("a") as ledger:
                ledger.write(line)
                ledger.flush()
                os.fsync(ledger.fileno())
        except OSError as exc:
            raise LedgerError(f"cannot write the send ledger {self.path}: {exc.strerror}") from exc

    def last_steps(self) -> dict[str, Step]:
        """The last step recorded for each Message-ID."""
        steps: dict[str, Step] = {}
        try:
            with self._locked("r") as ledger:
                for message_id, step in _entries(ledger):
                    steps[message_id] = step
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LedgerError(f"cannot read the send ledger {self.path}: {exc.strerror}") from exc
        return steps

    def compact(self, keep: Iterable[str]) -> None:
        """Keep only the entries of the given Message-IDs (the emails still `sending`)."""
        wanted = set(keep)
        try:
            with self._locked("r+") as ledger:
                lines = [line for line in ledger if line.split("\t", 1)[0] in wanted]
                ledger.seek(0)
                ledger.writelines(lines)
                ledger.truncate()
                ledger.flush()
                os.fsync(ledger.fileno())
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LedgerError(f"cannot write the send ledger {self.path}: {exc.strerror}") from exc

    @contextmanager
    def _locked(self, mode: str) -> Iterator:  # type: ignore[type-arg]
        with open(self.path, mode, encoding="utf-8") as ledger:
            fcntl.flock(ledger, fcntl.LOCK_EX)
            yield ledger


def _entries(lines: Iterable[str]) -> Iterator[tuple[str, Step]]:
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2 and parts[1] in Step._value2member_map_:
            yield parts[0], Step(parts[1])
        # A torn last line (a crash mid-write) is skipped: its step never completed.
