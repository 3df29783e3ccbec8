"""Outages noticed where they happen (issue 14): the mailbox lost in the middle of a
daemon poll that is sending, by a server that stops, or by one that still accepts
connections and never answers. The safety team hears once when it has lasted
`[alerts] outage_minutes`, and once when it is over; the poll does not stall per email."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.forms import portal_form
from tests.test_daemon import SAFETY_TEAM, start_daemon, stop, wait_for

ENQUIRIES = 30


@contextmanager
def silent_server(port: int) -> Iterator[None]:
    """Accepts connections on PORT and never says a word."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not closing.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        closing.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


@pytest.mark.parametrize("how", ["stopped", "silent"])
def test_mailbox_lost_while_a_poll_is_sending(dovecot, smtp_sink, make_config, how):
    for number in range(ENQUIRIES):
        dovecot.append(portal_form(email=f"family{number}@example.org",
                                   message_id=f"<enquiry-{number}@portal.example.org>"))
    path, _ = make_config(
        smtp_port=smtp_sink.port,
        mailbox_extra="poll_interval_seconds = 30\nidle = false\ntimeout_seconds = 2",
        extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\noutage_minutes = 0.1\n',
    )
    lost_at: list[float] = []

    def lose_the_mailbox(_data: bytes) -> None:
        smtp_sink.on_data = None
        dovecot.stop()
        lost_at.append(time.monotonic())

    smtp_sink.on_data = lose_the_mailbox  # the moment the first reply reaches the server

    def subjects() -> list[str]:
        return [str(m["Subject"]) for m in smtp_sink.parsed()]

    def replies() -> int:
        return sum(str(m["To"]) != SAFETY_TEAM for m in smtp_sink.parsed())

    daemon = start_daemon(path)
    try:
        assert wait_for(lambda: bool(lost_at), 30)
        outage = silent_server(dovecot.port) if how == "silent" else _nothing()
        with outage:
            # Every reply still goes: the lost Sent folder costs one attempt, not one each.
            assert wait_for(lambda: replies() == ENQUIRIES, 15)
            delivered_after = time.monotonic() - lost_at[0]
            assert wait_for(lambda: any("unreachable" in s for s in subjects()), 30)
            time.sleep(7)  # past the threshold again: still said only once
            assert sum("unreachable" in s for s in subjects()) == 1
        dovecot.restart()
        assert wait_for(lambda: any("reachable again" in s for s in subjects()), 60)
        time.sleep(2)
    finally:
        stderr = stop(daemon)
    assert delivered_after < 15
    assert sum("unreachable" in s for s in subjects()) == 1
    assert sum("reachable again" in s for s in subjects()) == 1
    assert "event=outage " in stderr and "channel=mailbox" in stderr
    assert "Traceback" not in stderr


@contextmanager
def _nothing() -> Iterator[None]:
    yield
