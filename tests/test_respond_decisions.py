"""What the respond stage decides for a newly logged contact, with no database: the urgent
alert, the one signposting reply, the draft for staff, and the persistent-contact notice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailbot import config as config_module
from mailbot.casework.deadlines import PersistentFacts, decide_persistent
from mailbot.db.models import Contact
from mailbot.ingest.examine import Examined
from mailbot.parsers.contact import Flag
from mailbot.replies.actions import Alert, Draft, JoinConcern, Persistent, Reply
from mailbot.replies.consent import ConsentState
from mailbot.replies.respond import decide, template_problems_notice, without_quotes
from mailbot.triage import TriageResult

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FAMILY = "jane.example@example.org"
URGENT = "duty.governor@prison.example"
SAFETY_TEAM = "safety.team@prison.example"
HEAD = "head.of.safer.custody@prison.example"


def make_config(tmp_path, **sections: dict[str, Any]) -> config_module.Config:  # type: ignore[no-untyped-def]
    raw: dict[str, Any] = {
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {"host": "localhost", "username": "u", "password_env": "UNUSED"},
        "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
        "state": {"directory": str(tmp_path)},
        "alerts": {"urgent": [URGENT], "safety_team": [SAFETY_TEAM]},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return config_module.from_dict(raw)


@pytest.fixture
def config(tmp_path):  # type: ignore[no-untyped-def]
    return make_config(tmp_path)


def enquiry(**overrides: Any) -> Contact:
    values: dict[str, Any] = dict(
        reference="SC-2026-00001", received_at=NOW, source="portal_form", verified=True,
        is_safer_custody=False, categories=["visits"], urgency="not_safer_custody",
        triage_reasons=[], flags=[], concern_text="How do I book a visit?",
        submitter_email=FAMILY, submitter_name="Jane Example", prisoner_number="A1234BC",
    )
    values.update(overrides)
    return Contact(**values)


def concern(**overrides: Any) -> Contact:
    values: dict[str, Any] = dict(
        is_safer_custody=True, categories=["bullying"], urgency="urgent",
        triage_reasons=['bullying (urgent, rule threatened: "threatened on the wing")'],
        concern_text="He is being threatened on the wing and is scared.",
    )
    values.update(overrides)
    return enquiry(**values)


def examined(*, routine: bool = True, assessed: bool = True, verified: bool = True,
             kind: str = "portal_form", **overrides: Any) -> Examined:
    triage = TriageResult(
        is_safer_custody=not routine, categories=("visits",),
        urgency="not_safer_custody" if routine else "urgent", reasons=(),
        routine=routine, assessed=assessed,
    )
    values: dict[str, Any] = dict(
        kind=kind, verified=verified, disposition="logged", reason="",
        message_id="form-1@portal.example", reply_to=FAMILY, triage=triage,
    )
    values.update(overrides)
    return Examined(**values)


NO_CONSENT = ConsentState("none", None)


def test_immediate_contact_decides_an_urgent_alert(config):
    contact = concern(urgency="immediate")
    actions = decide(config, contact, examined(routine=False), consent_state=NO_CONSENT)
    assert [type(a) for a in actions] == [Alert, Draft]
    alert = actions[0]
    assert alert.contact is contact
    assert alert.to == (URGENT, SAFETY_TEAM)
    assert actions[1].template == "ack_no_consent"


def test_an_address_in_both_alert_lists_is_alerted_once(tmp_path):
    config = make_config(tmp_path, alerts={"urgent": [SAFETY_TEAM.upper()],
                                           "safety_team": [SAFETY_TEAM]})
    [alert, _] = decide(config, concern(urgency="immediate"), examined(routine=False))
    assert alert.to == (SAFETY_TEAM,)


def test_an_urgent_alert_with_no_recipients_is_still_decided(tmp_path):
    config = make_config(tmp_path, alerts={"urgent": [], "safety_team": []})
    [alert, _] = decide(config, concern(urgency="immediate"), examined(routine=False))
    assert isinstance(alert, Alert) and alert.to == ()


def test_text_triage_could_not_assess_decides_an_urgent_alert(config):
    contact = enquiry(urgency="urgent", language="pl")
    actions = decide(config, contact, examined(routine=False, assessed=False))
    assert isinstance(actions[0], Alert)
    assert not any(isinstance(a, Reply) for a in actions)


def test_an_alert_leaves_out_the_familys_words_unless_configured(tmp_path):
    contact = concern(urgency="immediate")
    [alert, _] = decide(make_config(tmp_path), contact, examined(routine=False))
    assert alert.reasons == ("bullying (urgent, rule threatened)",)
    assert not alert.include_text
    with_text = make_config(tmp_path, alerts={"include_text": True})
    [alert, _] = decide(with_text, contact, examined(routine=False))
    assert alert.reasons == tuple(contact.triage_reasons)
    assert alert.include_text


def test_without_quotes_keeps_the_rule():
    reason = 'suicide_self_harm (immediate, rule plan_to_die: "end it" + "tonight")'
    assert without_quotes(reason) == "suicide_self_harm (immediate, rule plan_to_die)"


def test_routine_enquiry_decides_one_signposting_reply(config):
    contact = enquiry()
    actions = decide(config, contact, examined())
    assert actions == [
        Reply(contact=contact, to=FAMILY, category="visits",
              in_reply_to="<form-1@portal.example>")
    ]


def test_the_reply_goes_to_the_reply_to_before_the_forms_field(config):
    contact = enquiry(submitter_email="other@example.org")
    [reply] = decide(config, contact, examined(reply_to=FAMILY))
    assert reply.to == FAMILY


def test_a_form_with_no_valid_address_decides_a_reply_that_cannot_be_sent(config):
    contact = enquiry(submitter_email="not an address")
    [reply] = decide(config, contact, examined(reply_to=None))
    assert isinstance(reply, Reply) and reply.to is None


def test_a_reply_never_goes_to_our_own_address(config):
    contact = enquiry(submitter_email="safercustody@prison.example")
    [reply] = decide(config, contact, examined(reply_to="safercustody@prison.example"))
    assert reply.to is None


def test_unverified_form_decides_a_draft_not_a_reply(config):
    contact = enquiry(verified=False)
    actions = decide(config, contact, examined(verified=False))
    assert [type(a) for a in actions] == [Draft]
    assert actions[0].template == "signposting"


def test_unverified_safety_concern_is_drafted_from_ack_unverified(config):
    actions = decide(config, concern(verified=False), examined(routine=False, verified=False))
    assert [(type(a), a.template) for a in actions] == [(Draft, "ack_unverified")]


@pytest.mark.parametrize(("state", "template"), [
    (ConsentState("none", None), "ack_no_consent"),
    (ConsentState("wellbeing", 1), "ack_consent"),
    (ConsentState("full", 1), "ack_consent"),
    (ConsentState("restricted", 1), "ack_restricted"),
])
def test_a_safety_concern_is_drafted_from_the_template_its_consent_allows(
    config, state, template
):
    [draft] = decide(config, concern(), examined(routine=False), consent_state=state)
    assert isinstance(draft, Draft)
    assert (draft.template, draft.consent) == (template, state)


def test_a_safety_concern_is_never_signposted_even_if_triage_says_routine(config):
    [draft] = decide(config, concern(), examined(routine=True))
    assert isinstance(draft, Draft)


def test_a_text_triage_did_not_wholly_account_for_is_drafted(config):
    [draft] = decide(config, enquiry(), examined(routine=False))
    assert isinstance(draft, Draft) and draft.template == "signposting"


def test_a_text_with_no_triage_is_drafted(config):
    [draft] = decide(config, enquiry(), examined(triage=None))
    assert isinstance(draft, Draft)


@pytest.mark.parametrize("flag", [Flag.FROM_OUR_DOMAIN, Flag.NEEDS_REVIEW])
def test_a_flagged_enquiry_is_drafted(config, flag):
    [draft] = decide(config, enquiry(flags=[flag]), examined())
    assert isinstance(draft, Draft)


def test_a_direct_email_is_drafted(config):
    [draft] = decide(config, enquiry(source="direct_email"), examined(kind="direct_email"))
    assert isinstance(draft, Draft)


def test_a_long_routine_enquiry_waits_for_a_person(tmp_path):
    config = make_config(tmp_path, replies={"signpost_max_words": 5})
    [draft] = decide(config, enquiry(concern_text="one two three four five six"), examined())
    assert isinstance(draft, Draft)
    [reply] = decide(config, enquiry(concern_text="one two three four five"), examined())
    assert isinstance(reply, Reply)


def test_signposting_switched_off_drafts_it(tmp_path):
    config = make_config(tmp_path, replies={"send_signposting": False})
    [draft] = decide(config, enquiry(), examined())
    assert isinstance(draft, Draft)


def test_a_reply_to_an_existing_concern_joins_it(config):
    contact = concern(related_contact_id=7)
    assert decide(config, contact, examined(routine=False)) == [JoinConcern(contact)]


def test_template_problems_are_told_to_the_safety_team(config):
    notice = template_problems_notice(config, ["signposting.txt.j2: names the prisoner"])
    assert notice.to == (SAFETY_TEAM,)
    assert notice.kind == "template_alert"
    assert "- signposting.txt.j2: names the prisoner" in notice.text


# Persistent contact: what the database said is given; the decision is pure.

def test_fewer_contacts_than_the_threshold_are_not_persistent(config):
    facts = PersistentFacts("jane.example@example.org", count=2, already_notified=False)
    assert decide_persistent(config, enquiry(), facts) == []


def test_a_contact_naming_no_person_or_prisoner_is_not_persistent(config):
    assert decide_persistent(config, enquiry(), None) == []


def test_the_third_contact_decides_a_flag_and_one_notice(tmp_path):
    config = make_config(tmp_path, alerts={"persistent": [HEAD]})
    contact = enquiry(reference="SC-2026-00003")
    facts = PersistentFacts("jane.example@example.org", count=3, already_notified=False)
    [persistent] = decide_persistent(config, contact, facts)
    assert isinstance(persistent, Persistent)
    assert persistent.flag == "persistent_contact"
    assert persistent.person_key == "jane.example@example.org|A1234BC"
    assert persistent.notice is not None
    assert persistent.notice.to == (HEAD,)
    assert persistent.notice.contact is contact
    assert persistent.notice.subject == "Persistent contact: 3 contacts in 7 days [SC-2026-00003]"
    assert "mailbot concerns show SC-2026-00003" in persistent.notice.text


def test_persistent_contact_is_told_to_the_safety_team_when_no_one_else_is_named(config):
    facts = PersistentFacts("jane.example@example.org", count=4, already_notified=False)
    [persistent] = decide_persistent(config, enquiry(), facts)
    assert persistent.notice is not None and persistent.notice.to == (SAFETY_TEAM,)


def test_staff_already_told_this_window_get_no_second_notice(config):
    facts = PersistentFacts("jane.example@example.org", count=5, already_notified=True)
    [persistent] = decide_persistent(config, enquiry(), facts)
    assert persistent.notice is None


def test_the_persistent_contact_notice_reads_as_it_always_has(config):
    facts = PersistentFacts("jane.example@example.org", count=3, already_notified=False)
    [persistent] = decide_persistent(config, enquiry(reference="SC-2026-00003"), facts)
    assert persistent.notice is not None
    assert persistent.notice.text == (
        "The same person has contacted the safer custody team 3 times in 7 days about the "
        "same prisoner; the latest is SC-2026-00003.\n\n"
        "The safer custody toolkit suggests agreeing a single point of contact for them.\n"
        "See `mailbot concerns show SC-2026-00003` for the full record.\n"
    )
