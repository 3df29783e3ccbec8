"""Retention through the real pipeline: after the job, nothing personal about an old
concern is left anywhere in the database, and the months' counts are unchanged."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import LargeBinary, String, Text, select
from sqlalchemy.orm import Session

from mailbot import db
from mailbot.cli import main
from mailbot.db.models import JSON, Base, Contact
from mailbot.reports.figures import monthly_figures
from tests.forms import portal_form

pytestmark = pytest.mark.servers

MARKERS = ("zebulon", "quartz", "xerxes", "marlowe", "q9876zz", "900999", "quartzite")


def form_from(  # type: ignore[no-untyped-def]
    months_ago: int, marked: bool = True, days: int = 0, **values
) -> tuple[bytes, datetime]:
    people = (
        {"name": "Zebulon Quartz", "email": "zebulon.quartz@example.org",
         "prisoner_name": "Xerxes Marlowe", "prisoner_number": "Q9876ZZ",
         "text": "Xerxes Marlowe is being threatened by the quartzite gang. "
                 "Call 07700 900999."}
        if marked
        else {"name": "Recent Family", "email": "recent@example.org",
              "prisoner_name": "Recent Prisoner", "prisoner_number": "R1234RR",
              "text": "He is being threatened on the wing."}
    )
    form = portal_form(location="B wing", topic="Bullying, threats or violence",
                       urgency="I am worried about their safety", **people, **values)
    return form, datetime(2026, 11, 10, 12, tzinfo=UTC) - timedelta(days=31 * months_ago + days)


def everything_stored(session: Session) -> str:
    """Every text, JSON and binary value in every table, as one lower-case string."""
    parts = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns
                   if isinstance(c.type, String | Text | LargeBinary | JSON)]
        if not columns:
            continue
        for row in session.execute(select(*columns)).all():
            for value in row:
                if isinstance(value, bytes):
                    parts.append(value.decode("utf-8", "replace"))
                elif value is not None:
                    parts.append(json.dumps(value) if not isinstance(value, str) else value)
    return "\n".join(parts).lower()


def month_counts(session: Session) -> Counter:
    return Counter(
        (c.received_at.strftime("%Y-%m"), c.is_safer_custody, tuple(c.categories), c.urgency,
         c.location, c.responded_at is not None)
        for c in session.execute(select(Contact)).scalars()
    )


def test_old_concerns_lose_every_personal_field_and_keep_their_counts(
    dovecot, smtp_sink, make_config, capsys
):
    path, config = make_config(smtp_port=smtp_sink.port)
    # Two contacts from one person in the same month: a repeat the report must still
    # count once the person is gone.
    for days, message_id in ((0, "<old-1@portal.example.org>"),
                             (2, "<old-2@portal.example.org>")):
        form, when = form_from(30, days=days, message_id=message_id)
        dovecot.append(form, internal_date=when)
    form, when = form_from(1, marked=False, message_id="<recent@portal.example.org>")
    dovecot.append(form, internal_date=when)
    cli = ["--config", str(path)]
    assert main([*cli, "run", "--once"]) == 0
    capsys.readouterr()
    assert main([*cli, "drafts", "list", "--json"]) == 0
    oldest = json.loads(capsys.readouterr().out)[0]
    assert main([*cli, "drafts", "approve", str(oldest["id"]), "--by", "Officer Smith"]) == 0
    reference = oldest["reference"]
    assert main([*cli, "concerns", "action", reference, "--kind", "referral", "--department",
                 "healthcare", "--by", "Officer Smith",
                 "--note", "Spoke to Xerxes Marlowe about the quartzite gang"]) == 0
    assert main([*cli, "concerns", "close", reference, "--by", "Officer Smith",
                 "--outcome", "Zebulon Quartz reassured"]) == 0

    engine = db.make_engine(config.database.url)
    sessions = db.session_factory(engine)
    old_month = (datetime(2026, 11, 10, 12, tzinfo=UTC) - timedelta(days=31 * 30)).date()
    old_month = old_month.replace(day=1)
    with sessions() as session:
        before = month_counts(session)
        figures_before = month_figures(session, config, old_month)
        assert dict(figures_before[0])["repeat_contacts"] == (1, 2)
        assert all(marker in everything_stored(session) for marker in MARKERS)

    capsys.readouterr()
    assert main([*cli, "retention", "--dry-run"]) == 0
    assert "to anonymise: 2" in capsys.readouterr().out
    with sessions() as session:
        assert "zebulon" in everything_stored(session)  # a dry run changes nothing

    assert main([*cli, "retention"]) == 0
    with sessions() as session:
        stored = everything_stored(session)
        assert [m for m in MARKERS if m in stored] == []
        recent = session.execute(
            select(Contact).where(Contact.anonymised_at.is_(None))
        ).scalar_one()
        assert recent.submitter_name == "Recent Family"  # within retention: untouched
        assert month_counts(session) == before
        assert month_figures(session, config, old_month) == figures_before
    engine.dispose()


def month_figures(session: Session, config, month):  # type: ignore[no-untyped-def]
    figures = monthly_figures(session, config, month)
    return (
        [(f.key, (f.numerator, f.denominator)) for f in figures.figures],
        figures.tables,
        figures.breaches,
    )
