"""End to end with real Dovecot and a real SMTP server: an automatic reply needs positive
evidence that the whole text is a routine English enquiry, and a method with a time on it
alerts the duty governor in the same run."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.db.models import Contact, Draft
from tests.forms import portal_form
from tests.test_signposting import SAFETY_TEAM, URGENT, configured, export, run_once  # noqa: F401

pytestmark = pytest.mark.servers

VISITS = "Can you tell me what time visits start on a Sunday?"


def logged(config) -> tuple[list[Contact], list[Draft]]:  # type: ignore[no-untyped-def]
    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        contacts = list(session.execute(select(Contact).order_by(Contact.id)).scalars())
        drafts = list(session.execute(select(Draft).order_by(Draft.id)).scalars())
        session.expunge_all()
    engine.dispose()
    return contacts, drafts


def test_a_short_fully_recognised_visits_enquiry_gets_one_automatic_reply(
    dovecot, smtp_sink, configured  # noqa: F811
):
    dovecot.append(portal_form(text=VISITS))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert run_once(config_path) == 0
    assert [m["rcpt_tos"] for m in smtp_sink.messages] == [["sam.sample@example.net"]]
    [contact], drafts = logged(config)
    assert contact.unaccounted == [] and drafts == []


def test_one_unrecognised_sentence_makes_the_reply_a_draft_that_names_it(
    dovecot, smtp_sink, configured, capsys  # noqa: F811
):
    sentence = "Our Jade starts at the big school in September"
    dovecot.append(portal_form(text=f"{VISITS} {sentence}."))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert smtp_sink.messages == []
    [contact], [draft] = logged(config)
    assert any(sentence in quoted for quoted in contact.unaccounted)
    [entry] = export(config_path, capsys)
    assert any(sentence in quoted for quoted in entry["could_not_account_for"])
    capsys.readouterr()
    from mailbot.cli import main

    assert main(["--config", config_path, "drafts", "list"]) == 0
    assert f'mailbot could not account for: "{sentence}' in capsys.readouterr().out
    assert draft.template == "signposting"


def test_an_enquiry_in_polish_gets_a_draft_and_is_flagged_with_its_language(
    dovecot, smtp_sink, configured  # noqa: F811
):
    polish = ("Dzień dobry, chciałabym zapytać, o której godzinie zaczynają się "
              "widzenia w niedzielę i czy mogę przyjść z dziećmi.")
    dovecot.append(portal_form(text=polish))
    config_path, config = configured()
    assert run_once(config_path) == 0
    assert [m for m in smtp_sink.messages if "sam.sample" in str(m["rcpt_tos"])] == []
    [contact], [draft] = logged(config)
    assert contact.language == "pl" and "language:pl" in contact.flags
    assert contact.is_safer_custody
    assert polish.split(",")[0] in " ".join(contact.unaccounted)


def test_a_method_and_a_time_alert_the_duty_governor_in_the_same_run(
    dovecot, smtp_sink, configured  # noqa: F811
):
    dovecot.append(portal_form(
        text="hes been saving his sertraline, got 40 now, says hes taking the lot after "
             "bang up tonight", topic="Visits", urgency="It is not urgent"))
    config_path, config = configured()
    assert run_once(config_path) == 0
    recipients = sorted(r for m in smtp_sink.messages for r in m["rcpt_tos"])
    assert recipients == sorted([URGENT, SAFETY_TEAM])
    [contact], _ = logged(config)
    assert contact.urgency == "immediate"
