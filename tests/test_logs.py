"""Log lines: one `key=value` line an event, written at once and in order."""

from __future__ import annotations

import logging

import pytest

from mailbot import logs
from mailbot.logs import event

log = logging.getLogger("mailbot.test")


@pytest.fixture
def stderr_lines(capsys):  # type: ignore[no-untyped-def]
    logs.setup(logging.INFO)
    return lambda: [line.split(" event=")[1] for line in capsys.readouterr().err.splitlines()]


def test_each_event_is_written_at_once_in_order(stderr_lines):
    event(log, logging.INFO, "recorded", uid=1)
    assert stderr_lines() == ["recorded uid=1"]
    event(log, logging.INFO, "recorded", uid=2)
    event(log, logging.WARNING, "quarantined", uid=3)
    assert stderr_lines() == ["recorded uid=2", "quarantined uid=3"]


def test_a_value_with_spaces_quotes_or_newlines_stays_one_field(stderr_lines):
    event(log, logging.INFO, "sending_failed", error='SMTP said "no"\ntwice')
    assert stderr_lines() == [r'sending_failed error="SMTP said \"no\"\ntwice"']


def test_under_systemd_each_line_starts_with_its_journald_priority(monkeypatch, capsys) -> None:
    import logging

    from mailbot import logs

    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    logs.setup(logging.INFO)
    log = logging.getLogger("mailbot.test")
    logs.event(log, logging.ERROR, "mailbox_unreachable", host="imap.example")
    logs.event(log, logging.WARNING, "retrying")
    logs.event(log, logging.INFO, "poll_finished")
    lines = capsys.readouterr().err.splitlines()
    assert [line[:3] for line in lines] == ["<3>", "<4>", "<6>"]
    assert "event=mailbox_unreachable" in lines[0]


def test_outside_systemd_lines_have_no_priority_prefix(monkeypatch, capsys) -> None:
    import logging

    from mailbot import logs

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    logs.setup(logging.INFO)
    logs.event(logging.getLogger("mailbot.test"), logging.ERROR, "x")
    assert capsys.readouterr().err.startswith("ts=")
