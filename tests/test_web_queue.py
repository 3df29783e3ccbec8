"""The console's queue reads consent for a whole page in one query
(`consent.for_contacts`): it must say what `consent.for_contact`, which approval and the
command line ask, says for each contact, whatever mix of consents, restrictions and
withdrawals is recorded."""

from __future__ import annotations

import random

from sqlalchemy import select

from mailbot import db
from mailbot.db.models import Contact
from mailbot.replies import consent
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
