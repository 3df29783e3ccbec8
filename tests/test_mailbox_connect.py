"""Connecting to the mailbox: connection failures are retried with exponential backoff
(tenacity), then reported in one line; nothing is retried after a refused login."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from mailbot.errors import MailboxError
from mailbot.mailbox.fetch import Mailbox


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_is_retried_with_doubling_waits_then_named(
    offline_config, monkeypatch
) -> None:
    monkeypatch.setenv("UNUSED", "secret")
    settings = dataclasses.replace(offline_config.mailbox, host="127.0.0.1",
                                   port=_closed_port(), connect_attempts=4)
    waits: list[float] = []
    with pytest.raises(MailboxError, match="cannot reach the mailbox at 127.0.0.1"):
        Mailbox.connect(settings, sleep=waits.append)
    assert waits == [1, 2, 4]
