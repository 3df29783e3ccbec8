"""What the deadline check decides at a given moment, with no database: which concerns are
news for the safety team, in which digest, and which milder thresholds are only marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbot import config as config_module
from mailbot.casework.deadlines import decide
from mailbot.db.models import Contact, ContactAlert
from mailbot.db.models import Draft as DraftRow
from mailbot.replies.actions import Digest, Passed

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SAFETY_TEAM = "safety.team@prison.example"


def make_config(tmp_path, **alerts: Any) -> config_module.Config:  # type: ignore[no-untyped-def]
    return config_module.from_dict(
        {
            "prison": {"name": "HMP Exampletown"},
            "mailbox": {"host": "localhost", "username": "u", "password_env": "UNUSED"},
            "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
            "state": {"directory": str(tmp_path)},
            "alerts": {"safety_team": [SAFETY_TEAM], **alerts},
        }
    )


@pytest.fixture
def config(tmp_path):  # type: ignore[no-untyped-def]
    return make_config(tmp_path)


def concern(n: int, hours_ago: float, **overrides: Any) -> Contact:
    values: dict[str, Any] = dict(
        reference=f"SC-2026-{n:05d}", received_at=NOW - timedelta(hours=hours_ago),
        source="portal_form", is_safer_custody=True, urgency="urgent", status="new",
        concern_text="He is being threatened on the wing and is scared.",
    )
    values.update(overrides)
    return Contact(**values)


def test_a_concern_far_from_its_deadline_decides_nothing(config):
    assert decide([concern(1, 10)], config, NOW) == []


def test_a_concern_with_under_24_hours_left_decides_one_warning_digest(config):
    contact = concern(1, 50)
    [digest] = decide([contact], config, NOW)
    assert isinstance(digest, Digest)
    assert digest.kind == "deadline_warning"
    assert digest.to == (SAFETY_TEAM,)
    assert digest.subject == "Warning: 1 safer custody concern near 72 hours unanswered"
    assert [(c.contact, c.kind) for c in digest.crossings] == [(contact, "warn_24h")]
    assert "- SC-2026-00001: received " in digest.text
    assert "22.0 hours left" in digest.text
    assert "no open draft" in digest.text
    assert "mailbot concerns respond REFERENCE" in digest.text
    assert contact.concern_text not in digest.text


def test_a_concern_first_seen_late_gets_the_breach_and_marks_the_warnings_passed(config):
    contact = concern(1, 75)
    actions = decide([contact], config, NOW)
    assert [(type(a), getattr(a, "kind", None)) for a in actions] == [
        (Passed, "warn_24h"), (Passed, "warn_6h"), (Digest, "deadline_breach"),
    ]
    assert actions[-1].subject == "BREACH: 1 safer custody concern past 72 hours unanswered"
    assert "overdue by 3.0 hours" in actions[-1].text


def test_an_alert_already_recorded_is_not_repeated(config):
    contact = concern(1, 50, alerts=[ContactAlert(kind="warn_24h")])
    assert decide([contact], config, NOW) == []


def test_the_next_threshold_is_news_after_the_first(config):
    contact = concern(1, 67, alerts=[ContactAlert(kind="warn_24h")])
    [digest] = decide([contact], config, NOW)
    assert [c.kind for c in digest.crossings] == ["warn_6h"]


def test_concerns_crossing_together_share_a_digest_sorted_by_time_left(config):
    later, sooner = concern(1, 50), concern(2, 60)
    [digest] = decide([later, sooner], config, NOW)
    assert [c.contact for c in digest.crossings] == [sooner, later]
    assert digest.subject.startswith("Warning: 2 safer custody concerns")
    assert digest.text.index("SC-2026-00002") < digest.text.index("SC-2026-00001")


def test_warnings_and_breaches_go_in_separate_digests_warnings_first(config):
    warned = concern(1, 50)
    breached = concern(2, 80, alerts=[ContactAlert(kind="warn_24h"),
                                      ContactAlert(kind="warn_6h")])
    actions = decide([breached, warned], config, NOW)
    assert [a.kind for a in actions if isinstance(a, Digest)] == [
        "deadline_warning", "deadline_breach",
    ]


@pytest.mark.parametrize("overrides", [
    {"responded_at": NOW - timedelta(hours=1)},
    {"status": "closed"},
    {"is_safer_custody": False},
], ids=["responded", "closed", "not-a-concern"])
def test_a_concern_that_is_not_open_decides_nothing(config, overrides):
    assert decide([concern(1, 80, **overrides)], config, NOW) == []


def test_the_digest_names_an_open_draft(config):
    contact = concern(1, 50, drafts=[DraftRow(id=7, template="ack_no_consent",
                                              status="draft", message_id="<d7@x>",
                                              consent_scope="none")])
    [digest] = decide([contact], config, NOW)
    assert "draft 7 (ack_no_consent) awaiting approval" in digest.text


def test_the_familys_words_are_in_the_digest_only_when_configured(tmp_path):
    contact = concern(1, 50)
    [digest] = decide([contact], make_config(tmp_path, include_text=True), NOW)
    assert contact.concern_text in digest.text


def test_a_digest_with_no_safety_team_is_still_decided(tmp_path):
    config = make_config(tmp_path, safety_team=[])
    [digest] = decide([concern(1, 50)], config, NOW)
    assert digest.to == ()


def test_the_digest_reads_as_it_always_has(config):
    [digest] = decide([concern(1, 50), concern(2, 60)], config, NOW)
    assert digest.text == (
        "Warning: 2 safer custody concerns near 72 hours unanswered\n"
        "\n"
        "- SC-2026-00002: received Wed 18 Nov 2026 00:00 GMT, 12.0 hours left\n"
        "  urgency urgent; no open draft\n"
        "- SC-2026-00001: received Wed 18 Nov 2026 10:00 GMT, 22.0 hours left\n"
        "  urgency urgent; no open draft\n"
        "\n"
        "Record a response with `mailbot drafts approve ID --by NAME`, or a phone call with\n"
        "`mailbot concerns respond REFERENCE --by NAME --method phone --note TEXT`.\n"
    )


def test_the_digest_with_the_familys_words_reads_as_it_always_has(tmp_path):
    contact = concern(1, 75, concern_text="He is being\n threatened   on the wing.")
    [*_, digest] = decide([contact], make_config(tmp_path, include_text=True), NOW)
    assert digest.text == (
        "BREACH: 1 safer custody concern past 72 hours unanswered\n"
        "\n"
        "- SC-2026-00001: received Tue 17 Nov 2026 09:00 GMT, overdue by 3.0 hours\n"
        "  urgency urgent; no open draft\n"
        "  He is being threatened on the wing.\n"
        "\n"
        "Record a response with `mailbot drafts approve ID --by NAME`, or a phone call with\n"
        "`mailbot concerns respond REFERENCE --by NAME --method phone --note TEXT`.\n"
    )
