"""The daemon under real Dovecot and SMTP: IDLE brings new mail in without waiting for
the poll, and an unreachable mailbox is reported once past the outage threshold, then
its recovery."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.forms import portal_form

pytestmark = pytest.mark.servers

SAFETY_TEAM = "safety.team@prison.example"


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def logged(database: str, message_id: str) -> bool:
    try:
        with sqlite3.connect(database) as db:
            row = db.execute(
                "select count(*) from messages where message_id = ?", (message_id,)
            ).fetchone()
    except sqlite3.OperationalError:
        return False
    return bool(row and row[0])


def start_daemon(config_path) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config_path), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(daemon: subprocess.Popen) -> str:  # type: ignore[type-arg]
    daemon.terminate()
    _, stderr = daemon.communicate(timeout=30)
    return stderr


def test_new_mail_is_logged_within_seconds_without_waiting_for_the_poll(
    dovecot, smtp_sink, make_config, tmp_path
):
    path, config = make_config(smtp_port=smtp_sink.port,
                               mailbox_extra="poll_interval_seconds = 300")
    database = config.database.url.removeprefix("sqlite:///")
    daemon = start_daemon(path)
    try:
        dovecot.append(portal_form(message_id="<first@portal.example.org>"))
        assert wait_for(lambda: logged(database, "first@portal.example.org"), 20)
        time.sleep(1)  # the first poll is over: only IDLE can bring the next one in
        dovecot.append(portal_form(message_id="<pushed@portal.example.org>"))
        assert wait_for(lambda: logged(database, "pushed@portal.example.org"), 5)
    finally:
        stderr = stop(daemon)
    assert daemon.returncode == 0, stderr
    assert "idle_connected" in stderr


def test_a_backlog_found_by_the_daemon_is_logged_in_full_and_moved(
    dovecot, smtp_sink, make_config
):
    for number in range(12):
        dovecot.append(portal_form(message_id=f"<backlog-{number}@portal.example.org>"))
    path, config = make_config(smtp_port=smtp_sink.port, mailbox_extra="batch_size = 3")
    database = config.database.url.removeprefix("sqlite:///")
    daemon = start_daemon(path)
    try:
        assert wait_for(
            lambda: all(logged(database, f"backlog-{n}@portal.example.org") for n in range(12)),
            60,
        )
    finally:
        stderr = stop(daemon)
    assert daemon.returncode == 0, stderr
    assert stderr.count("event=message_recorded") == 12
    assert dovecot.folder_counts("INBOX")["INBOX"] == 0


def test_an_outage_is_alerted_once_and_its_recovery_said_once(
    dovecot, smtp_sink, make_config
):
    path, _ = make_config(
        smtp_port=smtp_sink.port,
        mailbox_extra="poll_interval_seconds = 1\nidle = false",
        extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\noutage_minutes = 0.05\n',
    )
    daemon = start_daemon(path)

    def subjects() -> list[str]:
        return [str(m["Subject"]) for m in smtp_sink.parsed()]

    try:
        time.sleep(2)
        dovecot.stop()
        assert wait_for(lambda: any("unreachable" in s for s in subjects()), 30)
        time.sleep(3)
        assert sum("unreachable" in s for s in subjects()) == 1
        dovecot.restart()
        assert wait_for(lambda: any("reachable again" in s for s in subjects()), 30)
    finally:
        stderr = stop(daemon)
    assert "event=outage " in stderr and "level=error" in stderr
    assert "event=outage_over" in stderr
    assert sum("reachable again" in s for s in subjects()) == 1


def test_a_mail_server_outage_is_reported_in_the_mailbox(dovecot, smtp_sink, make_config):
    path, _ = make_config(
        smtp_port=smtp_sink.port,
        mailbox_extra="poll_interval_seconds = 1\nidle = false",
        extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\noutage_minutes = 0.05\n'
        "[replies]\nretry_base_seconds = 0\n",
    )
    smtp_sink.stop()
    daemon = start_daemon(path)
    try:
        # Something to send, so that the mail server's absence is noticed.
        for number in range(3):
            dovecot.append(portal_form(message_id=f"<enquiry-{number}@portal.example.org>",
                                       email=f"family{number}@example.org"))
            time.sleep(2)
        assert wait_for(
            lambda: dovecot.folder_counts("Mailbot alerts")["Mailbot alerts"] >= 1, 30
        )
    finally:
        stderr = stop(daemon)
    assert "event=outage " in stderr and "channel=smtp" in stderr


def test_a_database_outage_is_left_in_the_mailbox_and_its_recovery_emailed(
    dovecot, smtp_sink, make_config
):
    from mailbot import db
    from mailbot.service.health import DATABASE, OutageMonitor

    _, config = make_config(
        smtp_port=smtp_sink.port,
        extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\noutage_minutes = 0\n',
    )
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    monitor = OutageMonitor(config, db.session_factory(engine))
    monitor.record(DATABASE, "OperationalError: could not connect")
    assert dovecot.folder_counts("Mailbot alerts")["Mailbot alerts"] == 1
    assert smtp_sink.messages == []
    monitor.record(DATABASE, "OperationalError: could not connect")  # said once only
    assert dovecot.folder_counts("Mailbot alerts")["Mailbot alerts"] == 1
    monitor.record(DATABASE, None)
    [recovered] = smtp_sink.parsed()
    assert "database is reachable again" in str(recovered["Subject"])
    engine.dispose()
