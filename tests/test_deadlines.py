"""The 72-hour clock with real Dovecot and SMTP: warnings and breaches once each,
never repeated; a recorded response stops the clock; persistent contact is noticed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.cli import main
from tests.forms import portal_form

pytestmark = pytest.mark.servers

SAFETY_TEAM = "safety.team@prison.example"
HEAD = "head.of.safer.custody@prison.example"
CONCERN = "He says he is being bullied and threatened on the wing and is scared."


def concern_form(email: str = "worried@example.org", **overrides) -> bytes:  # type: ignore[no-untyped-def]
    values = {"email": email, "topic": "Bullying, threats or violence",
              "urgency": "I am worried about their safety", "text": CONCERN}
    values.update(overrides)
    return portal_form(**values)


@pytest.fixture
def run(dovecot, smtp_sink, make_config, capsys):  # type: ignore[no-untyped-def]
    path, _ = make_config(
        smtp_port=smtp_sink.port,
        extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\npersistent = ["{HEAD}"]\n',
    )

    def call(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--config", str(path), *args])
        return code, capsys.readouterr().out

    return call


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def alerts_to(smtp_sink, address: str) -> list:  # type: ignore[no-untyped-def]
    return [m for m, raw in zip(smtp_sink.parsed(), smtp_sink.messages, strict=True)
            if address in raw["rcpt_tos"]]


def test_warning_and_breach_are_sent_once_each(dovecot, smtp_sink, run):
    dovecot.append(concern_form("seventy@example.org"), internal_date=hours_ago(70))
    dovecot.append(concern_form("seventyfive@example.org"), internal_date=hours_ago(75))
    dovecot.append(concern_form("ten@example.org"), internal_date=hours_ago(10))
    assert run("run", "--once")[0] == 0
    alerts = alerts_to(smtp_sink, SAFETY_TEAM)
    subjects = sorted(str(m["Subject"]).strip() for m in alerts)
    assert len(alerts) == 2
    assert subjects[0].startswith("BREACH: 1 safer custody concern")
    assert subjects[1].startswith("Warning: 1 safer custody concern")
    _, out = run("export")
    entries = {e["submitter"]["email"]: e for e in json.loads(out)}
    breach_body = next(m for m in alerts if "BREACH" in m["Subject"]).get_content()
    assert entries["seventyfive@example.org"]["reference"] in breach_body
    assert CONCERN[:20] not in breach_body  # no free text unless include_text
    assert [a["kind"] for a in entries["seventyfive@example.org"]["alerts"]] == ["breach"]
    assert [a["kind"] for a in entries["seventy@example.org"]["alerts"]] == ["warn_6h"]
    assert entries["ten@example.org"]["alerts"] == []
    assert entries["seventyfive@example.org"]["hours_left"] < 0
    assert 1 < entries["seventy@example.org"]["hours_left"] < 3
    assert entries["ten@example.org"]["due_by"] is not None

    # A second run (or a restart) sends nothing more.
    assert run("run", "--once")[0] == 0
    assert len(alerts_to(smtp_sink, SAFETY_TEAM)) == 2


def test_concerns_crossing_together_share_one_digest_sorted_by_time_left(
    dovecot, smtp_sink, run
):
    dovecot.append(concern_form("a@example.org"), internal_date=hours_ago(50))
    dovecot.append(concern_form("b@example.org"), internal_date=hours_ago(60))
    assert run("run", "--once")[0] == 0
    [digest] = alerts_to(smtp_sink, SAFETY_TEAM)
    assert str(digest["Subject"]).strip().startswith("Warning: 2 safer custody concerns")
    _, out = run("export")
    by_email = {e["submitter"]["email"]: e["reference"] for e in json.loads(out)}
    body = digest.get_content()
    assert body.index(by_email["b@example.org"]) < body.index(by_email["a@example.org"])


def test_a_recorded_response_stops_further_alerts(dovecot, smtp_sink, run):
    dovecot.append(concern_form(), internal_date=hours_ago(50))
    assert run("run", "--once")[0] == 0
    assert len(alerts_to(smtp_sink, SAFETY_TEAM)) == 1
    _, out = run("export")
    [entry] = json.loads(out)
    code, _ = run("concerns", "respond", entry["reference"], "--by", "Officer Smith",
                  "--method", "phone", "--note", "spoke to his mother")
    assert code == 0
    # Even once it would have breached, nothing more is sent: the clock has stopped.
    dovecot.append(concern_form("later@example.org"), internal_date=hours_ago(1))
    assert run("run", "--once")[0] == 0
    assert len(alerts_to(smtp_sink, SAFETY_TEAM)) == 1
    _, out = run("export")
    responded = next(e for e in json.loads(out) if e["reference"] == entry["reference"])
    assert responded["responded_at"] is not None
    assert responded["status"] == "responded"


def test_five_contacts_in_three_days_flag_the_third_onwards_and_notify_once(
    dovecot, smtp_sink, run
):
    for hours in (70, 55, 40, 20, 5):
        dovecot.append(concern_form("persistent@example.org", prisoner_number="A1234BC",
                                    text=f"Still worried, {hours} hours on."),
                       internal_date=hours_ago(hours))
    assert run("run", "--once")[0] == 0
    _, out = run("export")
    entries = sorted(json.loads(out), key=lambda e: e["received_at"])
    flagged = ["persistent_contact" in e["flags"] for e in entries]
    assert flagged == [False, False, True, True, True]
    notices = alerts_to(smtp_sink, HEAD)
    assert len(notices) == 1
    assert "single point of contact" in notices[0].get_content()
    assert run("run", "--once")[0] == 0
    assert len(alerts_to(smtp_sink, HEAD)) == 1


def test_status_reports_health_and_concerns_by_time_left(dovecot, smtp_sink, run):
    dovecot.append(concern_form(), internal_date=hours_ago(80))
    code, out = run("status")
    assert code != 0 and "no successful poll" in out
    assert run("run", "--once")[0] == 0
    code, out = run("status")
    assert code == 0, out
    assert "last successful poll" in out
    assert "1 overdue" in out
    assert "drafts awaiting approval: 1" in out
    assert "INBOX 0" in out


def test_status_is_unhealthy_when_the_mailbox_is_down(dovecot, run):
    assert run("run", "--once")[0] == 0
    dovecot.stop()
    code, out = run("status")
    assert code != 0 and "mailbox unreachable" in out
