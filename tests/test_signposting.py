"""End to end with real Dovecot and a real SMTP server: who gets an email, and how often.

A verified enquiry gets exactly one signposting reply; a forged form, a safety concern
and an automatic reply get none; a threat to life alerts the safety team in the same run;
temporary and permanent SMTP failures and a crash mid-send never duplicate an email."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.cli import main
from mailbot.db.models import OutboxEmail
from mailbot.mailbox import mail_client
from mailbot.replies.outbox import claim, send_due
from tests.conftest import sample_bytes
from tests.forms import portal_form

pytestmark = pytest.mark.servers

URGENT = "duty.governor@prison.example"
SAFETY_TEAM = "safety.team@prison.example"
ALERTS = f"""
[alerts]
urgent = ["{URGENT}"]
safety_team = ["{SAFETY_TEAM}"]

[replies]
retry_base_seconds = 0
"""
THREAT_TO_LIFE = "He rang me and said he is going to hang himself tonight. Please help."


@pytest.fixture
def configured(dovecot, smtp_sink, make_config):  # type: ignore[no-untyped-def]
    def make(extra: str = ALERTS):  # type: ignore[no-untyped-def]
        path, config = make_config(smtp_port=smtp_sink.port, extra=extra)
        return str(path), config

    return make


def run_once(config_path: str) -> int:
    return main(["--config", config_path, "run", "--once"])


def outbox(config) -> list[OutboxEmail]:  # type: ignore[no-untyped-def]
    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        rows = list(session.execute(select(OutboxEmail).order_by(OutboxEmail.id)).scalars())
    engine.dispose()
    return rows


def export(config_path: str, capsys) -> list[dict]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert main(["--config", config_path, "export"]) == 0
    return json.loads(capsys.readouterr().out)


def test_verified_visits_enquiry_gets_exactly_one_signposting_reply(
    dovecot, smtp_sink, configured, capsys
):
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert run_once(config_path) == 0

    assert len(smtp_sink.messages) == 1
    [delivered] = smtp_sink.messages
    assert delivered["rcpt_tos"] == ["sam.sample@example.net"]
    [reply] = smtp_sink.parsed()
    [entry] = export(config_path, capsys)
    assert entry["is_safer_custody"] is False
    assert "visits" in entry["categories"]
    assert f"[{entry['reference']}]" in reply["Subject"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<sample-02@portal.example.org>"
    assert reply["From"] == "safercustody.exampletown@prison.example"
    body = reply.get_body(("plain",)).get_content()
    assert "0808 808 2003" in body
    assert "Lee Sample" not in body and "Lee Sample" not in reply["Subject"]
    assert [r["kind"] for r in entry["replies"]] == ["signposting"]
    assert entry["replies"][0]["status"] == "sent"
    # A copy is kept in the mailbox's Sent folder.
    assert dovecot.folder_counts("Sent")["Sent"] == 1


def test_forged_form_safety_concern_and_out_of_office_get_nothing(
    dovecot, smtp_sink, configured, capsys
):
    dovecot.append(sample_bytes("04-portal-unverified.eml"))
    dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
    dovecot.append(sample_bytes("06-out-of-office.eml"))
    dovecot.append(portal_form(verified=False, email="forged@example.org"))
    config_path, _ = configured()
    assert run_once(config_path) == 0
    assert smtp_sink.messages == []
    entries = {e["message_id"]: e for e in export(config_path, capsys)}
    assert entries["sample-01@portal.example.org"]["is_safer_custody"] is True
    assert entries["sample-01@portal.example.org"]["urgency"] in ("urgent", "immediate")


def test_safety_words_in_a_visits_form_are_never_signposted(
    dovecot, smtp_sink, configured, capsys
):
    dovecot.append(portal_form(topic="Visits", text="When are visits? He said he can't go on."))
    config_path, _ = configured()
    assert run_once(config_path) == 0
    assert not [m for m in smtp_sink.messages if "sam.sample@example.net" in m["rcpt_tos"]]
    [entry] = export(config_path, capsys)
    assert entry["is_safer_custody"] is True


def test_threat_to_life_alerts_the_safety_team_in_the_same_run(
    dovecot, smtp_sink, configured, capsys
):
    dovecot.append(
        portal_form(topic="Something else", urgency="It is not urgent", text=THREAT_TO_LIFE)
    )
    config_path, _ = configured()
    assert run_once(config_path) == 0
    [entry] = export(config_path, capsys)
    assert entry["urgency"] == "immediate"
    recipients = sorted(r for m in smtp_sink.messages for r in m["rcpt_tos"])
    assert recipients == sorted([URGENT, SAFETY_TEAM])
    alert = smtp_sink.parsed()[0]
    assert entry["reference"] in alert["Subject"]
    text = alert.get_body(("plain",)).get_content()
    assert "hang himself" not in text and "A1234BC" not in text
    assert "Lee Sample" not in text
    assert alert["Auto-Submitted"] == "auto-generated"


def test_hostile_enquiry_reaches_only_the_one_family_address(
    dovecot, smtp_sink, configured, capsys
):
    dovecot.append(
        portal_form(
            email="sam.sample@example.net\r\nBcc: evil@attacker.example",
            # Template syntax and numbers are accounted for; a script would not be, and
            # the reply would wait for staff (tested in test_triage_signposting.py).
            text="{{ 7*7 }} what time are visits?",
        )
    )
    dovecot.append(
        portal_form(email="victim@example.org, evil@attacker.example",
                    reply_to="victim@example.org, evil@attacker.example")
    )
    config_path, _ = configured()
    assert run_once(config_path) == 0
    everyone = [r for m in smtp_sink.messages for r in m["rcpt_tos"]]
    assert "evil@attacker.example" not in everyone
    assert everyone == ["sam.sample@example.net"]
    for message in smtp_sink.parsed():
        assert "Bcc" not in message and "attacker" not in str(message)
        assert "49" not in message["Subject"]


def test_hostile_text_in_an_alert_is_shown_literally(dovecot, smtp_sink, configured):
    dovecot.append(
        portal_form(text="{{ 7*7 }} {% raw %} <script>alert(1)</script>\n" + THREAT_TO_LIFE)
    )
    config_path, _ = configured(ALERTS.replace("[alerts]", "[alerts]\ninclude_text = true"))
    assert run_once(config_path) == 0
    alert = smtp_sink.parsed()[0]
    text = alert.get_body(("plain",)).get_content()
    html = alert.get_body(("html",)).get_content()
    assert "{{ 7*7 }}" in text and "{% raw %}" in text and "<script>" in text
    assert "&lt;script&gt;" in html and "<script>" not in html


def test_temporary_smtp_failure_is_retried_and_delivered_once(
    dovecot, smtp_sink, configured
):
    smtp_sink.replies.append("451 4.3.0 Try again later")
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert smtp_sink.messages == []
    assert [(r.status, r.attempts) for r in outbox(config)] == [("queued", 1)]
    assert run_once(config_path) == 0
    assert len(smtp_sink.messages) == 1
    assert [(r.status, r.attempts) for r in outbox(config)] == [("sent", 2)]
    assert run_once(config_path) == 0
    assert len(smtp_sink.messages) == 1


def test_permanent_smtp_failure_marks_the_reply_failed(
    dovecot, smtp_sink, configured, capsys
):
    smtp_sink.replies.append("550 5.1.1 No such user")
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert run_once(config_path) == 0
    assert smtp_sink.messages == []
    [row] = outbox(config)
    assert row.status == "failed" and "550" in row.last_error
    [entry] = export(config_path, capsys)
    assert entry["replies"][0]["status"] == "failed"


# Every step of sending, the window included, is in tests/test_exactly_once.py.
@pytest.mark.parametrize("where", ["before_smtp", "after_mark_sent"])
def test_kill_during_sending_then_a_new_run_delivers_exactly_once(
    dovecot, smtp_sink, configured, where
):
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    dovecot.append(portal_form(email="other.family@example.org", topic="Property",
                               text="Where do I send his clothes?"))
    config_path, config = configured()
    killed = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", config_path, "run", "--once"],
        env=dict(os.environ, MAILBOT_FAILPOINT=where),
        capture_output=True,
    )
    assert killed.returncode == -9
    assert run_once(config_path) == 0
    assert run_once(config_path) == 0
    delivered = sorted(r for m in smtp_sink.messages for r in m["rcpt_tos"])
    assert delivered == ["other.family@example.org", "sam.sample@example.net"]
    assert [(r.status, r.copy_saved) for r in outbox(config)] == [("sent", True)] * 2
    assert dovecot.folder_counts("Sent") == {"Sent": 2}  # a copy each, filed once


def test_one_automatic_reply_per_address_per_day(dovecot, smtp_sink, configured):
    dovecot.append(portal_form(email="twice@example.org"))
    dovecot.append(portal_form(email="twice@example.org", topic="Money",
                               text="How do I send him money?"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert len(smtp_sink.messages) == 1
    assert sorted(r.status for r in outbox(config)) == ["sent", "suppressed"]


def test_a_bounce_of_our_reply_marks_it_failed(dovecot, smtp_sink, configured):
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    [row] = outbox(config)
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "To: safercustody.exampletown@prison.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-ID: <bounce-1@mx.example.net>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "MIME-Version: 1.0\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; sam.sample@example.net\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {row.message_id}\r\nSubject: {row.subject}\r\n\r\n"
        "--b--\r\n"
    ).encode()
    dovecot.append(bounce)
    assert run_once(config_path) == 0
    [row] = outbox(config)
    assert row.status == "failed" and row.bounced_at is not None
    assert len(smtp_sink.messages) == 1  # the bounce itself is never answered


def test_a_long_enquiry_waits_for_a_person_instead(dovecot, smtp_sink, configured, capsys):
    long_text = "Can I book a visit for Sunday afternoon please? " * 12
    dovecot.append(portal_form(text=long_text))
    config_path, _ = configured()
    assert run_once(config_path) == 0
    assert smtp_sink.messages == []
    [entry] = export(config_path, capsys)
    assert entry["is_safer_custody"] is False
    assert [d["template"] for d in entry["drafts"]] == ["signposting"]


@contextmanager
def one_reply_queued(dovecot, smtp_sink, configured):  # type: ignore[no-untyped-def]
    """A run that leaves one signposting reply queued (the SMTP server said try later),
    and sessions on its database."""
    smtp_sink.replies.append("451 4.3.0 Try again later")
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    engine = db.make_engine(config.database.url)
    try:
        yield config_path, config, db.session_factory(engine)
    finally:
        engine.dispose()


def test_an_email_claimed_by_one_sender_is_not_claimed_by_another(
    dovecot, smtp_sink, configured
):
    with one_reply_queued(dovecot, smtp_sink, configured) as (_, config, sessions):
        [row] = outbox(config)
        first, second = claim(sessions, row.id), claim(sessions, row.id)
    assert first is not None and first[1] == "sam.sample@example.net"
    assert second is None
    [row] = outbox(config)
    assert (row.status, row.attempts) == ("sending", 2)


def test_a_copy_the_mailbox_could_not_take_is_filed_on_a_later_pass(
    dovecot, smtp_sink, configured
):
    with one_reply_queued(dovecot, smtp_sink, configured) as (config_path, config, sessions):
        send_due(config, sessions, open_mailbox=None)  # the mailbox is down
    [row] = outbox(config)
    assert (row.status, row.copy_saved) == ("sent", False)
    assert run_once(config_path) == 0
    [row] = outbox(config)
    assert (row.status, row.copy_saved) == ("sent", True)
    assert dovecot.folder_counts("Sent") == {"Sent": 1}
    assert len(smtp_sink.messages) == 1
    assert run_once(config_path) == 0
    assert dovecot.folder_counts("Sent") == {"Sent": 1}  # filed once


def test_a_backlog_is_answered_while_it_is_stored_and_each_email_goes_once(
    dovecot, smtp_sink, make_config
):
    families = [f"family{i}@example.org" for i in range(5)]
    for address in families[:2]:
        dovecot.append(portal_form(email=address, topic="Visits",
                                   text="What time do visits start on a Sunday?"))
    dovecot.append(
        portal_form(topic="Something else", urgency="It is not urgent", text=THREAT_TO_LIFE)
    )
    for address in families[2:]:
        dovecot.append(portal_form(email=address, topic="Property",
                                   text="Where do I send his clothes?"))
    path, config = make_config(smtp_port=smtp_sink.port, extra=ALERTS,
                               mailbox_extra="batch_size = 2")  # three batches
    assert run_once(str(path)) == 0
    delivered = sorted(r for m in smtp_sink.messages for r in m["rcpt_tos"])
    assert delivered == sorted([*families, URGENT, SAFETY_TEAM])
    assert {(r.status, r.copy_saved) for r in outbox(config)} == {("sent", True)}
    assert run_once(str(path)) == 0
    assert len(smtp_sink.messages) == len(delivered)


@pytest.mark.parametrize(("per_pass", "placed_by_each_run"), [(100, [5, 5]), (2, [2, 4, 5])])
def test_a_backlog_places_its_drafts_each_once_a_pass_at_a_time(
    dovecot, smtp_sink, make_config, monkeypatch, per_pass, placed_by_each_run
):
    monkeypatch.setattr(mail_client, "PLACED_PER_PASS", per_pass)
    for i in range(5):
        dovecot.append(portal_form(email=f"family{i}@example.org",
                                   text="He has been self-harming again since his move."))
    path, _config = make_config(smtp_port=smtp_sink.port, extra=ALERTS,
                                mailbox_extra="batch_size = 2")  # three batches
    for placed in placed_by_each_run:
        assert run_once(str(path)) == 0
        assert dovecot.folder_counts("Drafts") == {"Drafts": placed}
    assert smtp_sink.messages == []
