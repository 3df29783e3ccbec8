"""The console's queue: the consent of a whole page is read in one query
(`consent.for_contacts`) and must be what `consent.for_contact`, which approval and the
command line ask, says for each contact, whatever mix of consents, restrictions and
withdrawals is recorded; the 72-hour clock in words and colour."""

from __future__ import annotations

import random

from sqlalchemy import select

from mailbot import db
from mailbot.db.models import Contact
from mailbot.replies import consent
from mailbot.web.clock import time_left_colour, time_left_words
from tests.seed import seed_log


def test_a_page_of_consents_read_at_once_is_what_each_says_alone(offline_config, sqlite_url):
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        seed_log(session, offline_config)
        contacts = list(session.execute(select(Contact).order_by(Contact.id)).scalars())
        rng = random.Random(3)
        for contact in rng.sample(contacts, 60):
            if not contact.prisoner_number:
                continue
            key = contact.submitter_email or (
                f"{contact.submitter_name}|{contact.submitter_phone}")
            common = {"prisoner": contact.prisoner_number, "contact": key, "by": "test"}
            action = rng.choice(("full", "wellbeing", "none", "restrict", "withdraw"))
            if action == "restrict":
                consent.restrict(session, **common)
            elif action == "withdraw":
                consent.grant(session, scope="full", **common)
                session.flush()
                consent.withdraw(session, **common)
            else:
                consent.grant(session, scope=action, **common)
            session.flush()
        together = consent.for_contacts(session, contacts)
        alone = {c.id: consent.for_contact(session, c) for c in contacts}
        assert together == alone
        scopes = {state.scope for state in together.values()}
        assert {"none", "full", "wellbeing", "restricted"} <= scopes
    engine.dispose()


def test_the_clock_in_words():
    assert time_left_words(31.5) == "31 hours left"
    assert time_left_words(1.0) == "1 hour left"
    assert time_left_words(0.5) == "30 minutes left"
    assert time_left_words(-0.2) == "overdue by 12 minutes"
    assert time_left_words(-4.7) == "overdue by 4 hours"
    assert time_left_words(-47.9) == "overdue by 47 hours"
    # Past two days late, in days: '2759 hours' is a number nobody reads.
    assert time_left_words(-48) == "overdue by 2 days"
    assert time_left_words(-2759) == "overdue by 114 days"
    assert [time_left_colour(h) for h in (-1, 5.9, 6, 23.9, 24, 70)] == [
        "red", "red", "orange", "orange", "green", "green"]
