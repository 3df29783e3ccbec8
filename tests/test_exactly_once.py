"""Exactly once under crashes and faults (issue 14), with real Dovecot, SMTP and databases:
the process is SIGKILLed at each step of sending an email and of moving a message, and
at random moments of a backlog; the database fails its writes while an email is with
the mail server. Afterwards no email has gone twice and every message is in one folder."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbot import config as config_module
from mailbot import db
from mailbot.cli import cli
from mailbot.devtools.devservers import POSTGRES_ADMIN_URL, throwaway_postgres_database
from mailbot.mailbox.fetch import Mailbox
from mailbot.service import health
from tests.conftest import sample_bytes
from tests.forms import portal_form
from tests.test_signposting import ALERTS, URGENT, outbox

UNCERTAIN = "may have been delivered"


def run_once(config_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config_path), "run", "--once"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )


def health_problems(config) -> list[str]:  # type: ignore[no-untyped-def]
    engine = db.make_engine(config.database.url)
    try:
        return health.status(config, db.session_factory(engine), probe=False).problems
    finally:
        engine.dispose()


def deliveries(smtp_sink) -> Counter[str]:  # type: ignore[no-untyped-def]
    """How many times the mail server took each Message-ID."""
    return Counter(str(m["Message-ID"]).strip() for m in smtp_sink.parsed())


def message_ids(dovecot, folder: str) -> list[str]:  # type: ignore[no-untyped-def]
    with dovecot.mailbox() as box:
        if not box.folder.exists(folder):
            return []
        box.folder.set(folder)
        return [m.headers.get("message-id", ("",))[0].strip()
                for m in box.fetch(headers_only=True, mark_seen=False)]


def after_the_fault_each_goes_once(config_path, config, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """Runs again once the fault is gone: both enquiries' replies delivered once each."""
    assert run_once(config_path).returncode == 0
    assert run_once(config_path).returncode == 0
    assert sorted(deliveries(smtp_sink).values()) == [1, 1]
    assert [r.status for r in outbox(config)] == ["sent", "sent"]


def two_enquiries(dovecot) -> None:  # type: ignore[no-untyped-def]
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    dovecot.append(portal_form(email="other.family@example.org", topic="Property",
                               text="Where do I send his clothes?"))


# --- SIGKILL at each step of sending one email --------------------------------------------

def killed_at(step, dovecot, smtp_sink, make_config, database_url):  # type: ignore[no-untyped-def]
    """Two enquiries, a run killed at STEP, then two whole runs; returns the config."""
    two_enquiries(dovecot)
    config_path, config = make_config(smtp_port=smtp_sink.port, extra=ALERTS,
                                      database_url=database_url)
    assert run_once(config_path, MAILBOT_FAILPOINT=step).returncode == -9
    assert run_once(config_path).returncode == 0
    assert run_once(config_path).returncode == 0
    return config_path, config


@pytest.mark.parametrize("step", ["before_smtp", "after_ledger", "after_mark_sent"])
def test_killed_where_the_record_is_clear_each_email_goes_exactly_once(
    dovecot, smtp_sink, make_config, database_url, step
):
    _path, config = killed_at(step, dovecot, smtp_sink, make_config, database_url)
    assert sorted(deliveries(smtp_sink).values()) == [1, 1]
    assert [(r.status, r.copy_saved) for r in outbox(config)] == [("sent", True)] * 2
    assert sorted(message_ids(dovecot, "Sent")) == sorted(r.message_id for r in outbox(config))


@pytest.mark.parametrize("step", ["before_smtp_data", "after_smtp_accept"])
def test_killed_while_the_server_had_the_data_a_family_email_is_never_sent_again(
    dovecot, smtp_sink, make_config, database_url, step
):
    """The one window left: from recording "handing over" to recording the 250. Nobody can
    know whether the email arrived, so it is not sent again but shown to staff."""
    config_path, config = killed_at(step, dovecot, smtp_sink, make_config, database_url)
    first, second = outbox(config)
    assert first.status == "failed" and UNCERTAIN in first.last_error
    assert second.status == "sent"
    delivered = deliveries(smtp_sink)
    assert max(delivered.values()) == 1
    assert delivered[second.message_id] == 1
    assert delivered[first.message_id] == (1 if step == "after_smtp_accept" else 0)
    assert "1 email(s) failed: see the outbox" in health_problems(config)
    # A member of staff checks with the family and sends it by hand: once more, same ID.
    result = CliRunner().invoke(cli, ["--config", str(config_path), "outbox", "resend",
                                      str(first.id), "--by", "Officer Ada"])
    assert result.exit_code == 0, result.output
    assert f"email {first.id} sent again" in result.output
    assert deliveries(smtp_sink)[first.message_id] == delivered[first.message_id] + 1
    assert health_problems(config) == []


def test_an_alert_interrupted_in_the_window_is_sent_again(dovecot, smtp_sink, make_config):
    """A second copy of an urgent alert harms nobody; a lost one might."""
    dovecot.append(portal_form(text="He said he is going to hang himself tonight."))
    config_path, config = make_config(smtp_port=smtp_sink.port, extra=ALERTS)
    assert run_once(config_path, MAILBOT_FAILPOINT="after_smtp_accept").returncode == -9
    assert run_once(config_path).returncode == 0
    rows = outbox(config)
    [alert] = [r for r in rows if r.kind == "urgent_alert" and r.recipient == URGENT]
    assert alert.status == "sent"
    assert alert.id == rows[0].id  # the alert goes first, so it was the one interrupted
    assert deliveries(smtp_sink)[alert.message_id] == 2


# --- the database fails its writes while the server has the email --------------------------

def _sqlite_file(config) -> Path:  # type: ignore[no-untyped-def]
    return Path(config.database.url.removeprefix("sqlite:///"))


def test_database_read_only_after_the_250_sends_nothing_twice(
    dovecot, smtp_sink, make_config, tmp_path
):
    two_enquiries(dovecot)
    config_path, config = make_config(
        smtp_port=smtp_sink.port, extra=ALERTS,
        database_url=f"sqlite:///{tmp_path / 'db' / 'mailbot.sqlite3'}",
    )
    files = [_sqlite_file(config).with_name(_sqlite_file(config).name + suffix)
             for suffix in ("", "-wal")]

    def make_read_only(_data: bytes) -> None:
        smtp_sink.on_data = None
        for path in files:
            subprocess.run(["chattr", "+i", str(path)], check=True)

    smtp_sink.on_data = make_read_only
    try:
        failed = run_once(config_path)
    finally:
        for path in files:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    after_the_fault_each_goes_once(config_path, config, smtp_sink)


def test_database_locked_longer_than_the_timeout_after_the_250_sends_nothing_twice(
    dovecot, smtp_sink, make_config
):
    two_enquiries(dovecot)
    config_path, _ = make_config(smtp_port=smtp_sink.port, extra=ALERTS)
    text = config_path.read_text()
    config_path.write_text(text.replace("[database]\n", "[database]\nlock_timeout_seconds = 1\n"))
    config = config_module.load(config_path)
    assert config.database.lock_timeout_seconds == 1
    released = threading.Event()

    def hold_the_lock(_data: bytes) -> None:
        smtp_sink.on_data = None
        holder = sqlite3.connect(_sqlite_file(config), check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")

        def release_later() -> None:
            time.sleep(4)
            holder.rollback()
            holder.close()
            released.set()

        threading.Thread(target=release_later, daemon=True).start()

    smtp_sink.on_data = hold_the_lock
    started = time.monotonic()
    first = run_once(config_path)
    took = time.monotonic() - started
    released.wait(10)
    assert first.returncode != 0 and "Traceback" not in first.stderr
    assert took < 30, "a lock timeout of 1 s must not hold a run for long"
    after_the_fault_each_goes_once(config_path, config, smtp_sink)


def test_postgresql_read_only_after_the_250_sends_nothing_twice(
    dovecot, smtp_sink, make_config
):
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    with throwaway_postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        two_enquiries(dovecot)
        config_path, config = make_config(smtp_port=smtp_sink.port, extra=ALERTS,
                                          database_url=url)

        def read_only(on: bool) -> None:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = '
                              + ("on" if on else "off"))
                if on:  # mailbot's open connections learn it by being cut off
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

        def make_read_only(_data: bytes) -> None:
            smtp_sink.on_data = None
            read_only(True)

        smtp_sink.on_data = make_read_only
        try:
            failed = run_once(config_path)
        finally:
            read_only(False)
        assert failed.returncode != 0 and "Traceback" not in failed.stderr
        assert run_once(config_path).returncode == 0
        assert run_once(config_path).returncode == 0
        assert sorted(deliveries(smtp_sink).values()) == [1, 1]
        assert [r.status for r in outbox(config)] == ["sent", "sent"]


# --- moves ------------------------------------------------------------------------------------

def test_moves_use_move_as_announced_after_login(dovecot, make_config):
    _path, config = make_config()
    with Mailbox.connect(config.mailbox) as mailbox:
        assert {"MOVE", "UIDPLUS"} <= mailbox.capabilities


def test_without_move_only_the_moved_uids_are_expunged(dovecot, make_config):
    """Someone else's message flagged \\Deleted in the inbox is not expunged by a move."""
    dovecot.append(portal_form(reference="PFH-SC-1"))
    dovecot.append(portal_form(reference="PFH-SC-2"))
    _path, config = make_config()
    with Mailbox.connect(config.mailbox) as mailbox:
        mailbox.capabilities = mailbox.capabilities - {"MOVE"}
        mailbox.ensure_folders("Processed")
        mailbox.select("INBOX")
        first, second = mailbox.uids()
        mailbox.client.client.uid("STORE", str(second), "+FLAGS", r"(\Deleted)")
        mailbox.move([first], "Processed")
    assert dovecot.folder_counts("INBOX", "Processed") == {"INBOX": 1, "Processed": 1}


def test_a_message_left_in_both_folders_by_a_crash_ends_in_one(dovecot, smtp_sink, make_config):
    """A crash between COPY and EXPUNGE (an older mailbot, or a server without MOVE)."""
    two_enquiries(dovecot)
    config_path, config = make_config(smtp_port=smtp_sink.port)
    assert run_once(config_path, MAILBOT_FAILPOINT="after_commit").returncode == -9
    with Mailbox.connect(config.mailbox) as mailbox:  # copied, not yet expunged
        mailbox.select("INBOX")
        mailbox.client.client.uid("COPY", ",".join(map(str, mailbox.uids())), "Processed")
    assert dovecot.folder_counts("INBOX", "Processed") == {"INBOX": 2, "Processed": 2}
    assert run_once(config_path).returncode == 0
    assert dovecot.folder_counts("INBOX", "Processed") == {"INBOX": 0, "Processed": 2}
    assert len(set(message_ids(dovecot, "Processed"))) == 2


# --- a backlog of 300 forms, killed at random moments ---------------------------------------

def backlog(count: int, rng: random.Random) -> list[bytes]:
    texts = [
        ("Visits", "What time do visits start on a Saturday?"),
        ("Property", "Where do I send his clothes?"),
        ("Self-harm or suicide", "He rang me crying and said he cannot cope any more."),
        ("Debt", "He owes money on the wing and they said he has till Monday."),
        ("Self-harm or suicide", "He said he is going to hang himself tonight."),
    ]
    forms = []
    for number in range(count):
        topic, text = rng.choice(texts)
        forms.append(portal_form(text=text, topic=topic, email=f"family{number}@example.org",
                                 reference=f"PFH-SC-20261202-{number:05d}"))
    return forms


def test_sigkill_storm_over_a_backlog_of_300_forms(
    dovecot, smtp_sink, make_config, database_url
):
    url = database_url
    rng = random.Random(14)
    forms = backlog(300, rng)
    for raw in forms:
        dovecot.append(raw)
    config_path, config = make_config(smtp_port=smtp_sink.port, extra=ALERTS,
                                      database_url=url)
    command = [sys.executable, "-m", "mailbot", "--config", str(config_path), "run", "--once"]
    kills = 0
    for _ in range(8):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))  # start-up is about 1.5 s: die mid-work
        if process.poll() is None:
            process.kill()
            kills += 1
        process.wait()
    final = run_once(config_path)
    assert final.returncode == 0, final.stderr[-2000:]
    assert run_once(config_path).returncode == 0
    assert kills >= 1  # how many land mid-work depends on the machine's load

    inbox, processed = message_ids(dovecot, "INBOX"), message_ids(dovecot, "Processed")
    assert inbox == []
    assert len(processed) == len(set(processed)) == 300
    delivered = deliveries(smtp_sink)
    rows = {r.message_id: r for r in outbox(config)}
    family = {m: n for m, n in delivered.items() if rows[m].kind not in ("urgent_alert",)}
    assert max(family.values()) == 1, "a family email went twice"
    drafts = message_ids(dovecot, "Drafts")
    assert len(drafts) == len(set(drafts)), "a draft was placed twice"
