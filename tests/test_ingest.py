"""End to end against a real Dovecot: the inbox is emptied, every message ends up in
Processed or Quarantine, the log holds exactly what it should, and nothing is recorded
twice, even after the process is killed between its commit and its move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot import db
from mailbot.cli import main
from mailbot.db.models import Disposition, StoredMessage
from mailbot.ingest.pipeline import Pipeline
from mailbot.mailbox.fetch import Mailbox
from tests.conftest import BOUNCES, sample_bytes
from tests.forms import portal_form

pytestmark = pytest.mark.servers

PORTAL_FORMS = [
    "01-portal-safety-multipart.eml",
    "02-portal-visits-enquiry-plain.eml",
    "03-portal-html-only-latin1.eml",
    "04-portal-unverified.eml",
]


@pytest.fixture
def make_config(make_config, smtp_sink):  # type: ignore[no-untyped-def]
    """conftest's, with a mail server that answers: a run that queues a reply and cannot
    send it exits non-zero, and these tests are about the inbox, not about sending."""

    def make(*args, smtp_port: int | None = None, **kwargs):  # type: ignore[no-untyped-def]
        return make_config(*args, smtp_port=smtp_port or smtp_sink.port, **kwargs)

    return make


def broken_portal_form() -> bytes:
    return (
        b"From: Prisoners' Families Helpline <safercustody-forms@portal.example.org>\r\n"
        b"To: safercustody.exampletown@prison.example\r\n"
        b"Subject: Safer Custody Contact Form - HMP Exampletown\r\n"
        b"Message-ID: <broken-form@portal.example.org>\r\n"
        b"Date: Sat, 14 Nov 2026 21:46:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"The form renderer failed. Please worry about my brother.\r\n"
    )


def unknown_charset_email() -> bytes:
    return (
        b"From: Ann Other <ann.other@example.com>\r\n"
        b"To: safercustody.exampletown@prison.example\r\n"
        b"Subject: my dad\r\n"
        b"Message-ID: <charset@example.com>\r\n"
        b"Date: Sat, 14 Nov 2026 21:46:00 +0000\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"My dad is not eating \xe9\xff and I am worried.\r\n"
    )


def large_attachment_email(megabytes: int = 20) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Big Sender <big@example.com>"
    msg["To"] = "safercustody.exampletown@prison.example"
    msg["Subject"] = "photos of the letter he sent"
    msg["Message-ID"] = "<large@example.com>"
    msg["Date"] = "Sat, 14 Nov 2026 21:46:00 +0000"
    msg.set_content("Please read the attached letter from my son.")
    msg.add_attachment(
        os.urandom(megabytes * 1024 * 1024), maintype="application", subtype="octet-stream",
        filename="letter.bin",
    )
    return msg.as_bytes()


def redelivered(raw: bytes) -> bytes:
    """The same message delivered a second time: a new trace header, same Message-ID."""
    return b"Received: from mx2.prison.example by mx.prison.example; Sun, 15 Nov 2026\r\n" + raw


def seed_mixed_inbox(dovecot) -> None:  # type: ignore[no-untyped-def]
    for name in PORTAL_FORMS + ["05-direct-email.eml", "06-out-of-office.eml"]:
        dovecot.append(sample_bytes(name))
    for name in ("dsn_01.eml", "postfix_01.eml", "qmail_01.eml"):
        dovecot.append((BOUNCES / name).read_bytes())
    dovecot.append(b"this is not an email at all, just a line of text\r\n")
    dovecot.append(broken_portal_form())
    dovecot.append(unknown_charset_email())
    dovecot.append(redelivered(sample_bytes("01-portal-safety-multipart.eml")))
    dovecot.append(sample_bytes("05-direct-email.eml"))  # the very same bytes twice
    dovecot.append(large_attachment_email())


def export(config_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["--config", str(config_path), "export", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("batches", [
    "",  # one batch
    # Batches of three, and of one, with duplicates and redeliveries falling in
    # different batches from their first copy.
    "batch_size = 3",
    "batch_size = 1",
], ids=["one-batch", "batches-of-3", "batches-of-1"])
def test_mixed_inbox_is_emptied_and_logged_exactly_once(dovecot, make_config, capsys, batches):
    seed_mixed_inbox(dovecot)
    config_path, config = make_config(mailbox_extra=batches)

    assert main(["--config", str(config_path), "run", "--once"]) == 0

    counts = dovecot.folder_counts("INBOX", "Processed", "Quarantine")
    assert counts == {"INBOX": 0, "Processed": 14, "Quarantine": 1}

    entries = export(config_path, capsys)
    by_message_id = {e["message_id"]: e for e in entries}
    assert sorted(by_message_id) == sorted(
        [
            "sample-01@portal.example.org",
            "sample-02@portal.example.org",
            "sample-03@portal.example.org",
            "sample-04@portal.example.org",
            "sample-05@example.com",
            "broken-form@portal.example.org",
            "charset@example.com",
            "large@example.com",
        ]
    )
    assert len({e["reference"] for e in entries}) == len(entries)
    first = by_message_id["sample-01@portal.example.org"]
    assert first["source"] == "portal_form" and first["verified"] is True
    assert first["prisoner"]["number"] == "A1234BC"
    assert first["reference"].startswith("SC-")
    forged = by_message_id["sample-04@portal.example.org"]
    assert forged["verified"] is False and "unverified_sender" in forged["flags"]
    assert by_message_id["sample-05@example.com"]["prisoner"]["number"] == "A4455CD"
    assert "needs_review" in by_message_id["broken-form@portal.example.org"]["flags"]
    assert "worry about my brother" in by_message_id["broken-form@portal.example.org"][
        "concern_text"
    ]
    assert "not eating" in by_message_id["charset@example.com"]["concern_text"]

    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        dispositions = dict(
            session.execute(
                select(StoredMessage.disposition, func.count()).group_by(
                    StoredMessage.disposition
                )
            ).all()
        )
        # 15 appended; the byte-identical second copy of sample 05 is the same message.
        assert dispositions == {
            Disposition.LOGGED: 8,  # the broken form too, for review: logged, not quarantined
            Disposition.IGNORED: 4,
            Disposition.DUPLICATE: 1,
            Disposition.QUARANTINED: 1,  # the line of text that is no email
        }
        assert all(m.raw for m in session.execute(select(StoredMessage)).scalars())

    # A second run finds an empty inbox and adds nothing.
    assert main(["--config", str(config_path), "run", "--once"]) == 0
    assert len(export(config_path, capsys)) == len(entries)


def test_messages_list_shows_where_each_message_went(dovecot, make_config, capsys):
    dovecot.append(sample_bytes("06-out-of-office.eml"))
    dovecot.append(b"no headers here\r\n")
    config_path, _ = make_config()
    assert main(["--config", str(config_path), "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config_path), "messages", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["disposition"]) for r in rows] == [
        ("auto_reply", "ignored"),
        ("malformed", "quarantined"),
    ]
    assert all(r["reason"] for r in rows)
    assert main(["--config", str(config_path), "messages", "list"]) == 0
    table = capsys.readouterr().out
    assert "quarantined" in table and "auto_reply" in table


def test_internaldate_is_the_received_time(dovecot, make_config, capsys):
    arrived = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"), internal_date=arrived)
    config_path, _ = make_config()
    assert main(["--config", str(config_path), "run", "--once"]) == 0
    [entry] = export(config_path, capsys)
    assert datetime.fromisoformat(entry["received_at"]) == arrived


def test_message_over_the_size_limit_is_logged_for_review_not_quarantined(
    dovecot, make_config, capsys
):
    dovecot.append(large_attachment_email(megabytes=2))
    config_path, _ = make_config(mailbox_extra="max_message_bytes = 1000000")
    assert main(["--config", str(config_path), "run", "--once"]) == 0
    assert dovecot.folder_counts("INBOX", "Processed", "Quarantine") == {
        "INBOX": 0, "Processed": 1, "Quarantine": 0}
    [entry] = export(config_path, capsys)
    assert "needs_review" in entry["flags"]
    assert any("only the header was read" in p for p in entry["problems"])


def portal_form_with_broken_base64() -> bytes:
    """A portal form whose base64 body is damaged past reading any of its labels."""
    return (
        b"From: Prisoners' Families Helpline <safercustody-forms@portal.example.org>\r\n"
        b"To: safercustody.exampletown@prison.example\r\n"
        b"Subject: Safer Custody Contact Form - HMP Exampletown\r\n"
        b"Message-ID: <broken-base64@portal.example.org>\r\n"
        b"Date: Sat, 14 Nov 2026 21:46:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"QSBuZXcgc2FmZXIgY3!!!VzdG9keSBjb250YWN0IGZvcm0*gaGFz#IGJlZW4gc3VibWl0dGVk\r\n"
        b"WW91ciBuYW1lOiBK@@@YW5lIEV4YW1wbGUK==%%Ly8v\r\n"
    )


def test_a_portal_form_with_broken_base64_is_logged_for_review_not_also_quarantined(
    dovecot, make_config, capsys
):
    dovecot.append(portal_form_with_broken_base64())
    config_path, _ = make_config()
    assert main(["--config", str(config_path), "run", "--once"]) == 0
    assert dovecot.folder_counts("INBOX", "Processed", "Quarantine") == {
        "INBOX": 0, "Processed": 1, "Quarantine": 0}
    [entry] = export(config_path, capsys)
    assert entry["source"] == "portal_form" and "needs_review" in entry["flags"]
    assert any(p.startswith("portal form could not be read") for p in entry["problems"])
    assert entry["due_by"] is not None and entry["responded_at"] is None  # the clock runs
    capsys.readouterr()
    assert main(["--config", str(config_path), "messages", "list", "--json"]) == 0
    [message] = json.loads(capsys.readouterr().out)
    assert (message["disposition"], message["destination"]) == ("logged", "processed")
    assert message["reason"].startswith("portal form could not be read")
    assert main(["--config", str(config_path), "messages", "list", "--disposition",
                 "quarantined", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_kill_between_commit_and_move_loses_nothing_and_duplicates_nothing(
    dovecot, make_config, capsys
):
    for name in PORTAL_FORMS + ["05-direct-email.eml", "06-out-of-office.eml"]:
        dovecot.append(sample_bytes(name))
    config_path, config = make_config(mailbox_extra="batch_size = 2")
    env = dict(os.environ, MAILBOT_FAILPOINT="after_commit")
    killed = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config_path), "run", "--once"],
        env=env,
        capture_output=True,
    )
    assert killed.returncode == -9
    # The first batch is committed but still in the inbox.
    assert dovecot.folder_counts("INBOX")["INBOX"] == 6
    assert len(export(config_path, capsys)) == 2

    assert main(["--config", str(config_path), "run", "--once"]) == 0
    assert dovecot.folder_counts("INBOX", "Processed") == {"INBOX": 0, "Processed": 6}
    entries = export(config_path, capsys)
    assert sorted(e["message_id"] for e in entries) == sorted(
        [f"sample-0{i}@portal.example.org" for i in range(1, 5)] + ["sample-05@example.com"]
    )
    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(StoredMessage)) == 6


def test_storage_works_on_sqlite_and_postgresql(dovecot, make_config, database_url, capsys):
    for name in PORTAL_FORMS:
        dovecot.append(sample_bytes(name))
    config_path, config = make_config(database_url=database_url)
    assert main(["--config", str(config_path), "run", "--once"]) == 0
    entries = export(config_path, capsys)
    assert [e["reference"][-5:] for e in entries] == ["00001", "00002", "00003", "00004"]
    assert {e["prisoner"]["number"] for e in entries} == {"A1234BC", "", "G1029HT"}
    # Seen again (as after a crash before the move): recognised, not recorded twice.
    for name in PORTAL_FORMS:
        dovecot.append(sample_bytes(name))
    engine = db.make_engine(config.database.url)
    summary = Pipeline(config, db.session_factory(engine)).run_once()
    assert summary.already_recorded == 4
    assert len(export(config_path, capsys)) == 4
    engine.dispose()


def test_wrong_password_is_a_clear_error_not_a_traceback(dovecot, make_config, tmp_path):
    config_path, _ = make_config()
    (tmp_path / "imap-password").write_text("not-the-password\n")
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config_path), "run", "--once"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert "login refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_mailbox_is_retried_then_reported(dovecot, make_config):
    config_path, _ = make_config()
    dovecot.stop()
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config_path), "run", "--once"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert "cannot reach the mailbox" in result.stderr
    assert result.stderr.count("mailbox_connect_failed") == 2
    assert "Traceback" not in result.stderr


def test_daemon_polls_until_sigterm_then_stops_cleanly(dovecot, make_config, capsys):
    config_path, _ = make_config()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config_path), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while dovecot.folder_counts("INBOX")["INBOX"] and datetime.now(UTC) < deadline:
            time.sleep(0.2)
        assert dovecot.folder_counts("INBOX", "Processed") == {"INBOX": 0, "Processed": 1}
    finally:
        daemon.terminate()
        _, stderr = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, stderr
    assert "daemon_stopped" in stderr


def test_header_fields_alone_can_be_fetched(dovecot, make_config):
    dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
    dovecot.append(sample_bytes("05-direct-email.eml"))
    _, config = make_config()
    with Mailbox.connect(config.mailbox) as mailbox:
        mailbox.select("INBOX")
        fetched = list(mailbox.fetch_header_fields(mailbox.uids(), "MESSAGE-ID"))
    assert [item.raw.strip() for item in fetched] == [
        b"Message-ID: <sample-01@portal.example.org>",
        b"Message-ID: <sample-05@example.com>",
    ]
    assert dovecot.folder_counts("INBOX")["INBOX"] == 2  # read, not moved or changed


def test_a_folder_made_by_another_connection_meanwhile_is_not_an_error(dovecot, make_config):
    _, config = make_config()
    with Mailbox.connect(config.mailbox) as mailbox, Mailbox.connect(config.mailbox) as other:
        # Both look before either creates: the situation of two connections at once.
        assert not mailbox.client.folder.exists("Sent")
        other.ensure_folders("Sent")
        looked, asked = mailbox.client.folder.exists, []

        def exists(name: str) -> bool:  # its first look came before the other made it
            asked.append(name)
            return len(asked) > 1 and looked(name)

        mailbox.client.folder.exists = exists
        mailbox.ensure_folders("Sent")
        assert len(asked) == 2
    assert dovecot.folder_counts("Sent") == {"Sent": 0}


def test_a_message_the_database_refuses_does_not_hold_back_its_batch(dovecot, make_config):
    for text in ("He is low.", "REFUSE ME: the database will not take this one.", "Visits?"):
        dovecot.append(portal_form(text=text))
    path, config = make_config()
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    with engine.begin() as connection:  # the batch's single flush fails on this one row
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON contacts"
            " WHEN NEW.concern_text LIKE 'REFUSE ME%'"
            " BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        )
    assert main(["--config", str(path), "run", "--once"]) == 0
    with db.session_factory(engine)() as session:
        dispositions = sorted(m.disposition for m in session.scalars(select(StoredMessage)))
    engine.dispose()
    assert dispositions == ["logged", "logged", "quarantined"]
    assert dovecot.folder_counts("INBOX", "Processed", "Quarantine") == {
        "INBOX": 0, "Processed": 2, "Quarantine": 1}


def test_another_writer_committing_throughout_a_backlog_costs_no_message(
    dovecot, make_config
):
    for number in range(40):
        dovecot.append(portal_form(text=f"He owes money on the wing, day {number}."))
    path, config = make_config(mailbox_extra="batch_size = 8")
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    done, commits = threading.Event(), []

    def other_writer() -> None:  # staff approving drafts while the daemon works, say
        while not done.is_set():
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO reference_counters (year, last_number) VALUES (1900, 0)"
                    " ON CONFLICT (year) DO UPDATE SET last_number = last_number + 1")
            commits.append(1)
            time.sleep(0.002)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        assert main(["--config", str(path), "run", "--once"]) == 0
    finally:
        done.set()
        writer.join()
    with db.session_factory(engine)() as session:
        dispositions = {m.disposition for m in session.scalars(select(StoredMessage))}
        recorded = session.scalar(select(func.count()).select_from(StoredMessage))
    engine.dispose()
    assert commits  # it really did write meanwhile
    assert (recorded, dispositions) == (40, {"logged"})
    assert dovecot.folder_counts("INBOX", "Processed") == {"INBOX": 0, "Processed": 40}
