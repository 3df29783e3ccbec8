"""Log lines: one `key=value` line an event, in order, held within a batch and written
together, with anything at WARNING or worse written at once."""

from __future__ import annotations

import logging

import pytest

from mailbot import logs
from mailbot.logs import event, lines_held

log = logging.getLogger("mailbot.test")


@pytest.fixture
def stderr_lines(capsys):  # type: ignore[no-untyped-def]
    logs.setup(logging.INFO)
    return lambda: [line.split(" event=")[1] for line in capsys.readouterr().err.splitlines()]


def test_lines_in_a_batch_are_written_together_at_its_end(stderr_lines):
    with lines_held():
        event(log, logging.INFO, "first", uid=1)
        event(log, logging.INFO, "second", uid=2)
        assert stderr_lines() == []
    event(log, logging.INFO, "after")
    assert stderr_lines() == ["first uid=1", "second uid=2", "after"]


def test_a_warning_is_written_at_once_after_what_was_held(stderr_lines):
    with lines_held():
        event(log, logging.INFO, "recorded", uid=1)
        event(log, logging.WARNING, "quarantined", uid=2)
        assert stderr_lines() == ["recorded uid=1", "quarantined uid=2"]
        event(log, logging.INFO, "recorded", uid=3)
    assert stderr_lines() == ["recorded uid=3"]


def test_what_was_held_is_written_when_the_batch_fails(stderr_lines):
    with pytest.raises(RuntimeError), lines_held():
        event(log, logging.INFO, "recorded", uid=1)
        raise RuntimeError("database gone")
    assert stderr_lines() == ["recorded uid=1"]
