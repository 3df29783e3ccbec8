"""Monthly figures: decides what each number in the safety meeting's report counts, out of
what, for the contacts received in one calendar month in Europe/London.

The questions are the HMPPS safer custody toolkit's: how many contacts came in, how many
were answered and how fast, how many arrived outside office hours or were not for the
safer custody route, how many were about self-harm or violence, where and about what,
who keeps contacting, which referrals were never followed up, and how often the prisoner
did not consent to share. Each answer is a `Figure` with its numerator *and* denominator,
so a percentage can always be checked by hand.

Every figure counts a contact by the month it was *received*: a response, action or
referral recorded later still belongs to the month the contact came in. The figures read
only what retention keeps (when a contact arrived, how, whether it was safer custody, its
categories, urgency, flags, wing, response and action times, the consent scope of its
drafts), so anonymised contacts count like any other. Repeat contacts are recognised by
`Contact.person_hash`, a keyed pseudonym made when the contact was logged, which retention
keeps; contacts logged before it existed fall back to their email, or name and phone.

A date range (the console's reports page, `mailbot report --from --to`) is counted by the
same function as a month, over whole local days: `period_figures`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailbot.casework.deadlines import PERSISTENT_FLAG, person_key
from mailbot.config import Config
from mailbot.db.models import ConcernAction, Contact, utcnow
from mailbot.replies.consent import Scope
from mailbot.reports.office_hours import in_office_hours

SELF_HARM = "suicide_self_harm"
VIOLENCE = "bullying_violence_threats"
REFERRAL, FOLLOW_UP = "referral", "referral_follow_up"
NO_CONSENT_SCOPES = (Scope.NONE, Scope.RESTRICTED)
ACTIONED_WITHIN = timedelta(hours=1)
UNKNOWN = "unknown"  # a wing or department nobody recorded
UNCATEGORISED = "uncategorised"
T = TypeVar("T")

# Bases: what a figure's denominator counts, shown beside it in the report.
RECEIVED = "contacts received"
SAFER_CUSTODY = "safer custody contacts"
REFERRALS = "referrals made"
WITH_DRAFT = "safer custody contacts with a drafted reply"



def response_bands(deadline_hours: int) -> tuple[str, ...]:
    """Response-time bands for safer custody contacts, in the report's chart order."""
    return (
        "Within 1 hour",
        "1 to 24 hours",
        f"24 to {deadline_hours} hours",
        f"Over {deadline_hours} hours",
        "No response, not yet due",
        "No response, overdue",
    )


@dataclass(frozen=True)
class Figure:
    """One headline number: `numerator` out of `denominator` (what `basis` counts)."""

    key: str
    label: str
    numerator: int
    denominator: int
    basis: str = RECEIVED

    @property
    def percent(self) -> float | None:
        """None when there is nothing to divide by: 0 of 0 is not 0%."""
        if self.denominator == 0:
            return None
        return 100.0 * self.numerator / self.denominator


@dataclass
class MonthFigures:
    """The answers for one month. `tables` map a row label to a count, largest first."""

    month: date  # the first day counted: the 1st for a month, a range's first day
    figures: list[Figure]
    tables: dict[str, list[tuple[str, int]]]
    breaches: list[str]  # references answered after the deadline, or overdue unanswered
    anonymised: int = 0  # contacts counted whose personal details retention has removed
    notes: list[str] = field(default_factory=list)
    until: date | None = None  # a date range's last day (included); None: the whole month

    @property
    def last_day(self) -> date:
        return self.until or next_month(self.month) - timedelta(days=1)

    def figure(self, key: str) -> Figure:
        for item in self.figures:
            if item.key == key:
                return item
        raise KeyError(key)


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """Every month from `first`'s to `last`'s, both included."""
    months, month = [], first_of_month(first)
    while month <= first_of_month(last):
        months.append(month)
        month = next_month(month)
    return months


def month_range(month: date, tz: tzinfo | str) -> tuple[datetime, datetime]:
    """The month as [start, end): local midnights on its first day and the next month's.

    A contact at 23:30 UTC on 31 August is 00:30 BST on 1 September, a September contact."""
    month = first_of_month(month)
    return day_range(month, next_month(month) - timedelta(days=1), tz)


def day_range(first: date, last: date, tz: tzinfo | str) -> tuple[datetime, datetime]:
    """The days from `first` to `last`, both included, as [start, end): local midnight
    starting `first` and local midnight ending `last`."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    after = last + timedelta(days=1)
    return (datetime(first.year, first.month, first.day, tzinfo=zone),
            datetime(after.year, after.month, after.day, tzinfo=zone))


def contacts_received(
    session: Session, config: Config, month: date, last: date | None = None
) -> list[Contact]:
    """The contacts received in `month`, or from the day `month` to `last` if given."""
    if last is None:
        start, end = month_range(month, config.office_hours.timezone)
    else:
        start, end = day_range(month, last, config.office_hours.timezone)
    return list(
        session.execute(
            select(Contact)
            .where(Contact.received_at >= start)
            .where(Contact.received_at < end)
            .options(selectinload(Contact.actions), selectinload(Contact.drafts))
            .order_by(Contact.received_at, Contact.id)
        ).scalars()
    )


def monthly_figures(
    session: Session, config: Config, month: date, now: datetime | None = None
) -> MonthFigures:
    """The figures for the contacts received in `month`; `now` decides which unanswered
    contacts are already overdue (default: the current time)."""
    return figures_from_contacts(
        contacts_received(session, config, month), config, first_of_month(month),
        now or utcnow(),
    )


def period_figures(
    session: Session, config: Config, first: date, last: date, now: datetime | None = None
) -> MonthFigures:
    """The figures for the contacts received from `first` to `last` (whole local days,
    both included), counted exactly as a month's are."""
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    if first == first_of_month(first) and last == next_month(first) - timedelta(days=1):
        return monthly_figures(session, config, first, now)
    counted = figures_from_contacts(contacts_received(session, config, first, last), config,
                                    first, now or utcnow())
    return replace(counted, until=last, figures=[
        replace(f, label=f.label.replace("this month", "in the period")) for f in counted.figures])


def figures_by_month_within(
    session: Session, config: Config, first: date, last: date, now: datetime | None = None
) -> list[MonthFigures]:
    """A range month by month, oldest first, each month cut to the days in the range."""
    now = now or utcnow()
    return [
        period_figures(session, config, max(first, month),
                       min(last, next_month(month) - timedelta(days=1)), now)
        for month in months_between(first, last)
    ]


def figures_for_months(
    session: Session, config: Config, first: date, last: date, now: datetime | None = None
) -> list[MonthFigures]:
    """One `MonthFigures` per month from `first` to `last` inclusive, oldest first."""
    now = now or utcnow()
    return [monthly_figures(session, config, month, now) for month in months_between(first, last)]


def figures_from_contacts(
    contacts: list[Contact], config: Config, month: date, now: datetime
) -> MonthFigures:
    """Pure: the month's figures from its contacts (with actions and drafts loaded)."""
    limit = timedelta(hours=config.deadlines.respond_within_hours)
    safer = [c for c in contacts if c.is_safer_custody]
    not_safer = [c for c in contacts if not c.is_safer_custody]
    with_draft = [c for c in safer if c.drafts]
    referrals = [
        (contact, action)
        for contact in contacts
        for action in contact.actions
        if action.kind == REFERRAL
    ]
    repeats = repeat_groups(contacts)

    figures = [
        Figure("contacts_received", "Contacts received", len(contacts), len(contacts)),
        Figure("responded", "Response sent to the family",
               _count(safer, lambda c: c.responded_at is not None), len(safer), SAFER_CUSTODY),
        Figure("actioned_within_1h", "Actioned within 1 hour (action or response)",
               _count(safer, actioned_within_hour), len(safer), SAFER_CUSTODY),
        Figure("answered_within_deadline",
               f"Answered within {config.deadlines.respond_within_hours} hours",
               _count(safer, lambda c: answered_within(c, limit)), len(safer), SAFER_CUSTODY),
        Figure("out_of_hours", "Received outside office hours",
               _count(contacts, lambda c: not in_office_hours(c.received_at,
                                                              config.office_hours)),
               len(contacts)),
        Figure("not_safer_custody", "Not appropriate for the safer custody route",
               len(not_safer), len(contacts)),
        Figure("self_harm_risk", "At risk of self-harm or suicide",
               _count(contacts, lambda c: SELF_HARM in c.categories), len(contacts)),
        Figure("violence_risk", "At risk of violence (bullying, threats or violence)",
               _count(contacts, lambda c: VIOLENCE in c.categories), len(contacts)),
        Figure("repeat_contacts", "Repeat contacts (same person, same prisoner, this month)",
               sum(len(group) - 1 for group in repeats), len(contacts)),
        Figure("persistent_contacts", "Persistent contacts (flagged)",
               _count(contacts, lambda c: PERSISTENT_FLAG in c.flags), len(contacts)),
        Figure("referrals_without_follow_up", "Referrals with no follow-up recorded",
               _count(referrals, lambda pair: not followed_up(*pair)), len(referrals),
               REFERRALS),
        Figure("no_consent_to_share", "Prisoner did not consent to share",
               _count(with_draft, lambda c: c.drafts[0].consent_scope in NO_CONSENT_SCOPES),
               len(with_draft), WITH_DRAFT),
    ]
    tables = {
        "by_type": _ranked(_categories(contacts)),
        "by_wing": _ranked(wing_counts(contacts)),
        "referrals_by_department": _ranked(
            Counter(action.department or UNKNOWN for _, action in referrals)
        ),
        "not_appropriate_by_category": _ranked(_categories(not_safer)),
        "repeat_contacts": [
            (", ".join(c.reference for c in group), len(group)) for group in repeats
        ],
        "by_urgency": _ranked(Counter(c.urgency for c in contacts)),
        "response_times": [
            (band, count)
            for band, count in _in_order(
                Counter(response_band(c, limit, now) for c in safer),
                response_bands(config.deadlines.respond_within_hours),
            )
        ],
    }
    anonymised = _count(contacts, lambda c: c.anonymised_at is not None)
    notes = []
    if anonymised:
        notes.append(
            f"{anonymised} of these contacts have been anonymised: they count in every "
            "figure, repeat contacts included (by the pseudonym kept for that)."
        )
    return MonthFigures(
        month=month,
        figures=figures,
        tables=tables,
        breaches=[c.reference for c in safer if breached(c, limit, now)],
        anonymised=anonymised,
        notes=notes,
    )


def actioned_within_hour(contact: Contact) -> bool:
    """Something was done (any recorded action, or the response) within an hour."""
    moments = [action.happened_at for action in contact.actions]
    if contact.responded_at is not None:
        moments.append(contact.responded_at)
    return bool(moments) and min(moments) - contact.received_at <= ACTIONED_WITHIN


def answered_within(contact: Contact, limit: timedelta) -> bool:
    return contact.responded_at is not None and contact.responded_at - contact.received_at <= limit


def breached(contact: Contact, limit: timedelta, now: datetime) -> bool:
    """Answered after the deadline, or still unanswered once it has passed."""
    answered = contact.responded_at or now
    return answered - contact.received_at > limit


def response_band(contact: Contact, limit: timedelta, now: datetime) -> str:
    bands = response_bands(round(limit.total_seconds() / 3600))
    if contact.responded_at is None:
        return bands[5] if breached(contact, limit, now) else bands[4]
    took = contact.responded_at - contact.received_at
    if took <= timedelta(hours=1):
        return bands[0]
    if took <= timedelta(hours=24):
        return bands[1]
    if took <= limit:
        return bands[2]
    return bands[3]


def followed_up(contact: Contact, referral: ConcernAction) -> bool:
    """A referral is followed up by a `referral_follow_up` for the same department on the
    same contact, recorded as happening at or after the referral."""
    return any(
        action.kind == FOLLOW_UP
        and action.department == referral.department
        and action.happened_at >= referral.happened_at
        for action in contact.actions
    )


def prisoner_key(contact: Contact) -> str | None:
    number = contact.prisoner_number.strip().upper()
    if number:
        return number
    name = " ".join(contact.prisoner_name.lower().split())
    return f"name:{name}" if name else None


def repeat_groups(contacts: list[Contact]) -> list[list[Contact]]:
    """Contacts from the same person (their email, else name and phone, as the deadline
    watcher recognises them) about the same prisoner, where there is more than one in the
    list; each group in the order received, groups by their first contact. Anonymised
    contacts have no person left to recognise."""
    groups: dict[tuple[str, str], list[Contact]] = defaultdict(list)
    for contact in contacts:
        if contact.person_hash:
            # The pseudonym made when it was logged: survives retention.
            groups[("hash", contact.person_hash)].append(contact)
            continue
        person, prisoner = person_key(contact), prisoner_key(contact)
        if person is not None and prisoner is not None:
            groups[(person, prisoner)].append(contact)
    repeated = [sorted(g, key=lambda c: (c.received_at, c.id)) for g in groups.values()
                if len(g) > 1]
    return sorted(repeated, key=lambda g: (g[0].received_at, g[0].id))


def wing_counts(contacts: list[Contact]) -> Counter[str]:
    """Contacts per wing; "A wing" and "a  Wing" are one wing, named as most often
    written (first written on a tie)."""
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for contact in contacts:
        written = " ".join(contact.location.split()) or UNKNOWN
        spellings[written.casefold()][written] += 1
    return Counter(
        {seen.most_common(1)[0][0]: seen.total() for seen in spellings.values()}
    )


def _categories(contacts: list[Contact]) -> Counter[str]:
    """A contact about two things counts once under each; one about nothing named, once
    under "uncategorised"."""
    counts: Counter[str] = Counter()
    for contact in contacts:
        counts.update(set(contact.categories) or {UNCATEGORISED})
    return counts


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _in_order(counts: Counter[str], order: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(label, counts.get(label, 0)) for label in order]


def _count(items: Iterable[T], predicate: Callable[[T], bool]) -> int:
    return sum(1 for item in items if predicate(item))
