"""The store on SQLite and PostgreSQL: migrations, references, identity of messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select

from mailbot import db
from mailbot.db.models import Contact, Disposition, StoredMessage
from mailbot.ingest.examine import Examined
from mailbot.ingest.store import allocate_reference, record, recorded_by_hash
from mailbot.parsers.contact import Flag, ParsedContact, Prisoner, Source, Submitter
from mailbot.replies.outbox import enqueue, recently_auto_replied

pytestmark = pytest.mark.servers


@pytest.fixture
def sessions(database_url):  # type: ignore[no-untyped-def]
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield db.session_factory(engine)
    engine.dispose()


def logged(**contact_fields) -> Examined:  # type: ignore[no-untyped-def]
    contact = ParsedContact(
        source=Source.PORTAL_FORM,
        submitter=Submitter(name="Jane Example", email="jane@example.com", email_valid=True),
        prisoner=Prisoner(name="John Example", number="A1234BC", dob=date(1998, 2, 3)),
        concern_text="line one\nline two: with a colon",
        flags=[Flag.UNVERIFIED_SENDER],
        **contact_fields,
    )
    return Examined(
        kind="portal_form", verified=False, disposition=Disposition.LOGGED, reason="test",
        message_id="m1@example.org", contact=contact,
    )


def store(session, examined: Examined, sha: str, when: datetime) -> StoredMessage:  # type: ignore[no-untyped-def]
    return record(
        session, examined, raw=b"raw bytes", sha256=sha, size=9, folder="INBOX",
        uidvalidity=4_000_000_000, uid=1, received_at=when,
    )


def test_upgrade_creates_every_table_and_is_idempotent(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    db.upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"messages", "contacts", "reference_counters", "mailbox_state",
            "alembic_version"} <= tables
    engine.dispose()


def test_schema_head_names_the_newest_migration():
    from alembic.script import ScriptDirectory

    config = db.alembic_config(db.make_engine("sqlite://"))
    assert ScriptDirectory.from_config(config).get_current_head() == db.SCHEMA_HEAD


def test_a_database_left_at_an_older_migration_is_upgraded(database_url):
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    config = db.alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() != db.SCHEMA_HEAD
    db.upgrade(engine)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == db.SCHEMA_HEAD
    engine.dispose()


def test_references_count_up_per_year(sessions):
    with sessions() as session:
        refs = [allocate_reference(session, 2026) for _ in range(3)]
        refs.append(allocate_reference(session, 2027))
        session.commit()
    assert refs == ["SC-2026-00001", "SC-2026-00002", "SC-2026-00003", "SC-2027-00001"]


def test_a_contact_round_trips_with_aware_times_and_lists(sessions):
    when = datetime(2026, 11, 14, 21, 46, tzinfo=timezone(timedelta(hours=1)))
    with sessions() as session:
        message = store(session, logged(), "a" * 64, when)
        session.commit()
        message_pk = message.id
    with sessions() as session:
        contact = session.execute(
            select(Contact).where(Contact.message_pk == message_pk)
        ).scalar_one()
        assert contact.received_at == when
        assert contact.received_at.tzinfo is not None
        assert contact.flags == ["unverified_sender"]
        assert contact.concern_text == "line one\nline two: with a colon"
        assert contact.prisoner_dob == date(1998, 2, 3)
        assert contact.message.uidvalidity == 4_000_000_000
        assert contact.reference == "SC-2026-00001"


def test_messages_are_found_again_by_their_bytes(sessions):
    now = datetime.now(UTC)
    with sessions() as session:
        store(session, logged(), "b" * 64, now)
        session.commit()
    with sessions() as session:
        found = recorded_by_hash(session, ["b" * 64, "c" * 64])
        assert list(found) == ["b" * 64]


def test_the_same_bytes_cannot_be_recorded_twice(sessions):
    now = datetime.now(UTC)
    with sessions() as session:
        store(session, logged(), "d" * 64, now)
        session.commit()
    with sessions() as session, pytest.raises(Exception, match="(?i)unique"):
        store(session, logged(), "d" * 64, now)


def test_one_automatic_reply_per_address_whatever_was_flushed_or_committed_between(
    sessions, offline_config
):
    def signpost(session, to: str) -> str:  # type: ignore[no-untyped-def]
        return enqueue(session, offline_config, kind="signposting", to=to, subject="Visits",
                       text="How to book a visit.", rate_limited=True).status

    with sessions() as session, sessions() as another:
        assert signpost(session, "family@example.org") == "queued"
        assert signpost(session, "Family@Example.org") == "suppressed"  # not yet flushed
        session.flush()
        assert signpost(session, "family@example.org") == "suppressed"  # flushed
        session.commit()
        assert not recently_auto_replied(session, "other@example.org", timedelta(days=1))
        session.commit()
        assert signpost(another, "other@example.org") == "queued"
        another.commit()
        assert signpost(session, "other@example.org") == "suppressed"  # another's commit
        assert signpost(session, "third@example.org") == "queued"
        session.rollback()  # never sent, so it does not count
        assert signpost(session, "third@example.org") == "queued"


def test_the_migrations_build_the_schema_the_models_describe(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from mailbot.db.models import Base

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
