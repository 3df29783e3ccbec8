"""Staff alerts are templates under templates/alerts/, checked by the same policy as the
family replies: the deadline digest, persistent contact, and outage alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailbot.replies.policy import check_templates, context_for, render_alert
from mailbot.service.health import MAILBOX, OutageMonitor

NOW = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)


def test_the_shipped_alert_templates_pass_their_policy():
    assert check_templates() == []


def test_an_alert_is_given_only_the_variables_it_declares():
    assert context_for("persistent_contact", {"count": 3, "window_days": 7,
                                              "reference": "SC-1", "concern_text": "x"}) == {
        "count": 3, "window_days": 7, "reference": "SC-1",
    }


def test_an_outage_alert_and_its_recovery_read_as_they_always_have(offline_config):
    told = []
    monitor = OutageMonitor(offline_config, sessions=None)  # type: ignore[arg-type]
    monitor._tell = told.append  # type: ignore[method-assign]
    monitor.record(MAILBOX, "connection refused", NOW)
    monitor.record(MAILBOX, "connection refused", NOW + timedelta(minutes=60))
    monitor.record(MAILBOX, None, NOW + timedelta(minutes=90))
    [down, up] = told
    assert down.subject == "mailbot: the mailbox has been unreachable since 2026-11-20 09:15 UTC"
    assert down.text == (
        "mailbot cannot reach the mailbox (since 09:15 UTC).\n"
        "Last error: connection refused\n\n"
        "While it is down, new forms are not being logged or answered and deadline alerts "
        "may not go out. mailbot keeps trying and will say when it recovers.\n"
    )
    assert up.subject == "mailbot: the mailbox is reachable again"
    assert up.text == "The mailbox is reachable again after about 90 minutes.\n"


def test_the_deadline_digest_subject_counts_its_concerns():
    rendered = render_alert("deadline_digest", {"breach": True, "count": 2, "hours": 72,
                                                "include_text": False, "entries": []})
    assert rendered.subject == "BREACH: 2 safer custody concerns past 72 hours unanswered"
