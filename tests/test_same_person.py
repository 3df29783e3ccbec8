"""Who "the same person" is: one definition (the email case-folded, else the name with
the phone's digits), whichever path brought a contact in (a batch from the inbox, or a
quarantined message replayed by staff)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from mailbot import db
from mailbot.casework.deadlines import PERSISTENT_FLAG, note_persistent_contact, person_key
from mailbot.db.models import Contact, StoredMessage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def session(sqlite_url):  # type: ignore[no-untyped-def]
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


def logged(session, n: int, hours_ago: float, **submitter: str) -> Contact:  # type: ignore[no-untyped-def]
    received_at = NOW - timedelta(hours=hours_ago)
    message = StoredMessage(sha256=hashlib.sha256(bytes([n])).hexdigest(),
                            mailbox_folder="INBOX", received_at=received_at, size=100,
                            kind="portal_form", disposition="logged", raw=b"")
    contact = Contact(message=message, received_at=received_at, reference=f"SC-2026-{n:05d}",
                      source="portal_form", prisoner_number="A1234BC", **submitter)
    session.add(contact)
    session.flush()
    return contact


@pytest.mark.parametrize("people", [
    # No email: the name's case and spacing, and how the phone number is written, differ.
    [{"submitter_name": "Jane Example", "submitter_phone": "07700 900123"},
     {"submitter_name": "jane  example", "submitter_phone": "07700900123"},
     {"submitter_name": "JANE EXAMPLE", "submitter_phone": "(07700) 900-123"}],
    # The same address in different cases.
    [{"submitter_email": "Jane.Example@Example.org"},
     {"submitter_email": "jane.example@example.org"},
     {"submitter_email": "JANE.EXAMPLE@EXAMPLE.ORG"}],
], ids=["name-and-phone", "email"])
def test_the_third_contact_from_one_person_however_written_is_persistent(
    session, offline_config, people
):
    contacts = [logged(session, n, 48 - 10 * n, **who) for n, who in enumerate(people, 1)]
    assert len({person_key(c) for c in contacts}) == 1
    assert note_persistent_contact(session, offline_config, contacts[-1])
    assert PERSISTENT_FLAG in contacts[-1].flags


def test_different_people_about_one_prisoner_are_not_persistent(session, offline_config):
    contacts = [
        logged(session, 1, 30, submitter_name="Jane Example", submitter_phone="07700 900123"),
        logged(session, 2, 20, submitter_name="Jane Example", submitter_phone="07700 900999"),
        logged(session, 3, 10, submitter_email="jane@example.org"),
    ]
    assert not note_persistent_contact(session, offline_config, contacts[-1])
