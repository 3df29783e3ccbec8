"""Crash points for tests: prove that a process killed at the worst moment loses nothing.

`MAILBOT_FAILPOINT=NAME` makes the process kill itself (SIGKILL, no clean-up) the first
time it reaches the point NAME. Unset, a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

AFTER_COMMIT = "after_commit"  # ingest: batch committed, messages not yet moved
# The steps of sending one email (mailbot/replies/outbox.py), in order:
BEFORE_SMTP = "before_smtp"  # claimed as sending, not yet offered to SMTP
BEFORE_SMTP_DATA = "before_smtp_data"  # MAIL and RCPT accepted, handing over recorded
AFTER_SMTP_ACCEPT = "after_smtp_accept"  # SMTP answered 250, not yet in the ledger
AFTER_LEDGER = "after_ledger"  # the ledger says accepted, the database not yet
AFTER_MARK_SENT = "after_mark_sent"  # the database says sent, the Sent copy not filed
# The steps of placing one draft in the Drafts folder (mailbot/mailbox/mail_client.py):
DRAFT_SEARCHED = "draft_searched"  # Drafts searched for its Message-ID, nothing appended
DRAFT_APPENDED = "draft_appended"  # the copy appended, `placed` not yet committed
DRAFT_PLACED = "draft_placed"  # `placed` committed


def failpoint(name: str) -> None:
    if os.environ.get("MAILBOT_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
