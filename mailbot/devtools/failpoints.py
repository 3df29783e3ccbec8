"""Crash points for tests: prove that a process killed at the worst moment loses nothing.

`MAILBOT_FAILPOINT=NAME` makes the process kill itself (SIGKILL, no clean-up) the first
time it reaches the point NAME. Unset, a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

AFTER_COMMIT = "after_commit"  # ingest: batch committed, messages not yet moved
BEFORE_SMTP = "before_smtp"  # outbox: email claimed as sending, not yet handed to SMTP
AFTER_SMTP_ACCEPT = "after_smtp_accept"  # outbox: SMTP accepted it, marked sent, not filed
# The steps of placing one draft in the Drafts folder (mailbot/mailbox/mail_client.py):
DRAFT_SEARCHED = "draft_searched"  # Drafts searched for its Message-ID, nothing appended
DRAFT_APPENDED = "draft_appended"  # the copy appended, `placed` not yet committed
DRAFT_PLACED = "draft_placed"  # `placed` committed


def failpoint(name: str) -> None:
    if os.environ.get("MAILBOT_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
