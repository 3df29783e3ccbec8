"""The monthly figures on a seeded log, on SQLite and PostgreSQL: each headline number and
table is counted again here, in plain Python over the seed's facts, and must agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from mailbot import db
from mailbot.config import Config
from mailbot.reports.figures import (
    Figure,
    contacts_received,
    figures_for_months,
    month_range,
    monthly_figures,
)
from tests.seed import SEED_NOW, seed_log

pytestmark = pytest.mark.servers

LONDON = ZoneInfo("Europe/London")
SEPTEMBER, OCTOBER, NOVEMBER = date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)
Facts = list[dict[str, Any]]


@dataclass
class Seeded:
    session: Session
    config: Config  # the defaults: Mon-Fri 08:00-17:00 Europe/London, 72 hours
    facts: Facts


@pytest.fixture
def seeded(database_url: str, offline_config: Config) -> Iterator[Seeded]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        facts = seed_log(session, offline_config, rng_seed=1)
        session.commit()
        session.expunge_all()
        yield Seeded(session, offline_config, facts)
    engine.dispose()


# --- The independent count: what a person with the seed's list would work out. ---

def in_month(facts: Facts, month: date) -> Facts:
    def local_month(fact: dict[str, Any]) -> tuple[int, int]:
        moment = fact["received_at"].astimezone(LONDON)
        return moment.year, moment.month

    return [f for f in facts if local_month(f) == (month.year, month.month)]


def outside_office_hours(moment: datetime) -> bool:
    local = moment.astimezone(LONDON)
    return local.weekday() >= 5 or not 8 <= local.hour < 17


def hours_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def referrals(month: Facts) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(f, a) for f in month for a in f["actions"] if a["kind"] == "referral"]


def followed_up(fact: dict[str, Any], referral: dict[str, Any]) -> bool:
    return any(
        a["kind"] == "referral_follow_up" and a["department"] == referral["department"]
        and a["happened_at"] >= referral["happened_at"]
        for a in fact["actions"]
    )


def repeat_groups(month: Facts) -> list[list[str]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for fact in month:
        if not fact["anonymised"]:  # retention removed who they were
            groups.setdefault((fact["person"], fact["prisoner"]), []).append(fact["reference"])
    return [refs for refs in groups.values() if len(refs) > 1]


def expected_figures(month: Facts, now: datetime) -> dict[str, tuple[int, int]]:
    everyone = len(month)
    safer = [f for f in month if f["is_safer_custody"]]
    answered = [f for f in safer if f["responded_at"] is not None]

    def first_done(fact: dict[str, Any]) -> datetime | None:
        moments = [a["happened_at"] for a in fact["actions"]]
        if fact["responded_at"] is not None:
            moments.append(fact["responded_at"])
        return min(moments) if moments else None

    drafted = [f for f in safer if f["consent_scopes"]]
    made = referrals(month)
    return {
        "contacts_received": (everyone, everyone),
        "responded": (len(answered), len(safer)),
        "actioned_within_1h": (
            sum(1 for f in safer
                if first_done(f) and hours_between(f["received_at"], first_done(f)) <= 1),
            len(safer),
        ),
        "answered_within_deadline": (
            sum(1 for f in answered if hours_between(f["received_at"], f["responded_at"]) <= 72),
            len(safer),
        ),
        "out_of_hours": (sum(outside_office_hours(f["received_at"]) for f in month), everyone),
        "not_safer_custody": (everyone - len(safer), everyone),
        "self_harm_risk": (
            sum("suicide_self_harm" in f["categories"] for f in month), everyone),
        "violence_risk": (
            sum("bullying_violence_threats" in f["categories"] for f in month), everyone),
        "repeat_contacts": (sum(len(g) - 1 for g in repeat_groups(month)), everyone),
        "persistent_contacts": (
            sum("persistent_contact" in f["flags"] for f in month), everyone),
        "referrals_without_follow_up": (
            sum(not followed_up(f, r) for f, r in made), len(made)),
        "no_consent_to_share": (
            sum(f["consent_scopes"][0] in ("none", "restricted") for f in drafted),
            len(drafted),
        ),
    }


def expected_breaches(month: Facts, now: datetime) -> list[str]:
    return [
        f["reference"] for f in month
        if f["is_safer_custody"]
        and hours_between(f["received_at"], f["responded_at"] or now) > 72
    ]


def categories_of(facts: Facts) -> Counter[str]:
    counts: Counter[str] = Counter()
    for fact in facts:
        counts.update(fact["categories"] or ["uncategorised"])
    return counts


# --- Month boundaries ---

def test_month_range_is_london_midnight_to_london_midnight() -> None:
    start, end = month_range(SEPTEMBER, "Europe/London")
    assert start.astimezone(UTC) == datetime(2026, 8, 31, 23, 0, tzinfo=UTC)  # BST
    assert end.astimezone(UTC) == datetime(2026, 9, 30, 23, 0, tzinfo=UTC)
    start, end = month_range(NOVEMBER, LONDON)
    assert start.astimezone(UTC) == datetime(2026, 11, 1, tzinfo=UTC)  # GMT
    assert end.astimezone(UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    start, end = month_range(date(2026, 12, 15), LONDON)
    assert (start.date(), end.date()) == (date(2026, 12, 1), date(2027, 1, 1))


def test_a_contact_at_2330_utc_on_31_august_is_a_september_contact(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    edge = next(f for f in facts if f["received_at"] == datetime(2026, 8, 31, 23, 30, tzinfo=UTC))
    august = {c.reference for c in contacts_received(session, config, date(2026, 8, 1))}
    september = {c.reference for c in contacts_received(session, config, SEPTEMBER)}
    assert edge["reference"] in september
    assert edge["reference"] not in august


def test_a_contact_at_2330_utc_on_31_october_stays_in_october(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    edge = next(f for f in facts
                if f["received_at"] == datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    october = {c.reference for c in contacts_received(session, config, OCTOBER)}
    november = {c.reference for c in contacts_received(session, config, NOVEMBER)}
    assert edge["reference"] in october
    assert edge["reference"] not in november


# --- Headline figures ---

@pytest.mark.parametrize("month", [SEPTEMBER, OCTOBER, NOVEMBER], ids=["sep", "oct", "nov"])
def test_each_headline_figure_matches_an_independent_count(seeded, month: date) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    result = monthly_figures(session, config, month, now=SEED_NOW)
    expected = expected_figures(in_month(facts, month), SEED_NOW)
    got = {f.key: (f.numerator, f.denominator) for f in result.figures}
    assert list(got) == list(expected), "headline figures in the documented order"
    for key, counts in expected.items():
        assert got[key] == counts, key
    assert result.month == month


def test_every_figure_has_something_to_count_in_november(seeded) -> None:
    """The seed is rich enough that no figure is trivially 0 of N or N of N."""
    session, config = seeded.session, seeded.config
    result = monthly_figures(session, config, NOVEMBER, now=SEED_NOW)
    for figure in result.figures[1:]:
        assert 0 < figure.numerator < figure.denominator, figure


def test_breaches_are_late_answers_and_overdue_silences(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    for month in (SEPTEMBER, OCTOBER, NOVEMBER):
        result = monthly_figures(session, config, month, now=SEED_NOW)
        assert result.breaches == expected_breaches(in_month(facts, month), SEED_NOW)
    november = monthly_figures(session, config, NOVEMBER, now=SEED_NOW)
    by_time = {f["received_at"]: f["reference"] for f in facts}
    exactly_72h = by_time[datetime(2026, 11, 9, 10, tzinfo=UTC)]
    a_minute_late = by_time[datetime(2026, 11, 11, 10, tzinfo=UTC)]
    not_yet_due = by_time[datetime(2026, 11, 30, 23, 59, tzinfo=UTC)]
    assert exactly_72h not in november.breaches
    assert a_minute_late in november.breaches
    assert not_yet_due not in november.breaches
    later = monthly_figures(session, config, NOVEMBER,
                            now=SEED_NOW + timedelta(days=3))
    assert not_yet_due in later.breaches


def test_out_of_hours_is_judged_in_london_time(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    by_time = {f["received_at"]: f["reference"] for f in facts}
    # 07:30 UTC: 08:30 BST in September (inside), 07:30 GMT in November (outside).
    september = monthly_figures(session, config, SEPTEMBER, now=SEED_NOW)
    november = monthly_figures(session, config, NOVEMBER, now=SEED_NOW)
    assert by_time[datetime(2026, 9, 14, 7, 30, tzinfo=UTC)]
    assert september.figure("out_of_hours").numerator == sum(
        outside_office_hours(f["received_at"]) for f in in_month(facts, SEPTEMBER))
    assert not outside_office_hours(datetime(2026, 9, 14, 7, 30, tzinfo=UTC))
    assert outside_office_hours(datetime(2026, 11, 16, 7, 30, tzinfo=UTC))
    assert november.figure("out_of_hours").numerator == sum(
        outside_office_hours(f["received_at"]) for f in in_month(facts, NOVEMBER))


def test_anonymised_contacts_still_count(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    for month in (SEPTEMBER, NOVEMBER):
        result = monthly_figures(session, config, month, now=SEED_NOW)
        facts_this_month = in_month(facts, month)
        anonymised = sum(f["anonymised"] for f in facts_this_month)
        assert anonymised > 0
        assert result.anonymised == anonymised
        assert result.figure("contacts_received").numerator == len(facts_this_month)
        assert any("anonymised" in note for note in result.notes)


# --- Tables ---

@pytest.mark.parametrize("month", [SEPTEMBER, NOVEMBER], ids=["sep", "nov"])
def test_tables_match_an_independent_count(seeded, month: date) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    result = monthly_figures(session, config, month, now=SEED_NOW)
    these = in_month(facts, month)

    assert dict(result.tables["by_type"]) == categories_of(these)
    assert dict(result.tables["not_appropriate_by_category"]) == categories_of(
        [f for f in these if not f["is_safer_custody"]])
    wings = {label.casefold(): n for label, n in result.tables["by_wing"]}
    assert wings == {w.casefold(): n for w, n in Counter(f["wing"] for f in these).items()}
    assert dict(result.tables["referrals_by_department"]) == Counter(
        r["department"] or "unknown" for _, r in referrals(these))
    assert sorted(result.tables["repeat_contacts"]) == sorted(
        (", ".join(g), len(g)) for g in repeat_groups(these))
    for name, rows in result.tables.items():
        if name not in ("repeat_contacts", "response_times"):
            counts = [n for _, n in rows]
            assert counts == sorted(counts, reverse=True), f"{name} largest first"


def test_the_persistent_series_is_one_repeat_group_with_two_flagged(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    result = monthly_figures(session, config, NOVEMBER, now=SEED_NOW)
    series = [f["reference"] for f in in_month(facts, NOVEMBER) if f["person"] == "P25"]
    assert (", ".join(series), len(series)) in result.tables["repeat_contacts"]
    flagged = [f["reference"] for f in in_month(facts, NOVEMBER)
               if f["person"] == "P25" and "persistent_contact" in f["flags"]]
    assert len(flagged) == 2


def test_response_times_cover_every_safer_custody_contact(seeded) -> None:
    session, config = seeded.session, seeded.config
    result = monthly_figures(session, config, NOVEMBER, now=SEED_NOW)
    bands = dict(result.tables["response_times"])
    assert sum(bands.values()) == result.figure("responded").denominator
    assert bands["Over 72 hours"] + bands["No response, overdue"] == len(result.breaches)


# --- Several months, and an empty one ---

def test_figures_for_months_gives_each_month_in_order(seeded) -> None:
    session, config, facts = seeded.session, seeded.config, seeded.facts
    months = figures_for_months(session, config, date(2026, 8, 1), NOVEMBER)
    assert [m.month for m in months] == [date(2026, 8, 1), SEPTEMBER, OCTOBER, NOVEMBER]
    assert [m.figure("contacts_received").numerator for m in months] == [
        len(in_month(facts, m.month)) for m in months]
    assert sum(m.figure("contacts_received").numerator for m in months) == len(facts)


def test_a_month_with_no_contacts_has_no_percentages(seeded) -> None:
    session, config = seeded.session, seeded.config
    result = monthly_figures(session, config, date(2027, 1, 1), now=SEED_NOW)
    assert all(f.numerator == f.denominator == 0 for f in result.figures)
    assert all(f.percent is None for f in result.figures)
    assert result.breaches == []


def test_percent_is_numerator_over_denominator() -> None:
    assert Figure("x", "X", 1, 4).percent == 25.0
    assert Figure("x", "X", 0, 0).percent is None
