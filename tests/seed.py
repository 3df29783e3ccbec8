"""A seeded communications log for the figures and report tests: decides which contacts,
responses, actions and drafts exist from August to November 2026, and returns them as
plain facts so that a test can count each figure again without mailbot's code.

Every kind of contact is there: verified and unverified portal forms, direct emails,
enquiries that are not for safer custody, concerns of every urgency and several
categories, answered fast, late or not at all, with welfare checks, referrals followed up
or not, drafts whose consent was none, wellbeing, full or restricted, contacts outside
office hours (evenings, weekends, the BST and GMT edges of a month), repeat and
persistent contacts, and anonymised contacts. Hand-made edge cases come first; a seeded
random month of ordinary contacts fills the rest. Rows are created directly
(StoredMessage, Contact, Draft, ConcernAction, OutboxEmail); the caller commits.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import ConcernAction, Contact, Draft, OutboxEmail, StoredMessage

LONDON = ZoneInfo("Europe/London")
# The moment the seeded log is looked at: the November report, run on 2 December.
SEED_NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
MONTHS = (date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1))

SAFETY = (
    ("suicide_self_harm", 30), ("mental_health", 22), ("bullying_violence_threats", 18),
    ("physical_health_medication", 10), ("debt", 8), ("drugs_alcohol", 8),
    ("bereavement", 4), ("loss_of_contact", 6), ("new_to_custody", 4), ("staff_conduct", 3),
)
ENQUIRIES = ("visits", "property", "money", "phone_pin", "letters", "release_transfer",
             "complaint", "other")
WINGS = (("A wing", 24), ("B wing", 20), ("C wing", 18), ("D wing", 10),
         ("Healthcare unit", 6), ("Segregation unit", 4), ("", 12))
DEPARTMENTS = ("healthcare", "mental_health", "chaplaincy", "family_services", "security",
               "omu", "substance_misuse")
SCOPES = (("none", 15), ("wellbeing", 30), ("full", 40), ("restricted", 15))
FIRST_NAMES = ("Jane", "Mary", "Sam", "Alex", "Priya", "Tom", "Grace", "Mohammed", "Ellen",
               "Chris", "Aisha", "Dave", "Nora", "Kwame", "Lucy", "Rhys", "Beth", "Omar",
               "Wendy", "Callum", "Fatima", "Gary", "Hannah", "Ian", "Joy", "Kieran",
               "Lena", "Mark", "Nadia", "Owen")
SURNAMES = ("Example", "Sample", "Tester", "Placeholder", "Demo", "Fictional")


@dataclass(frozen=True)
class Person:
    """Someone who contacts the team, always about the same prisoner."""

    key: str  # the seed's own name for them: "P07"
    name: str
    email: str  # "" for someone who gives only a name and a phone number
    phone: str
    prisoner: str  # prisoner number
    prisoner_name: str


def seed_log(session: Session, config: Config, rng_seed: int = 1) -> list[dict[str, Any]]:
    """Create the seeded log in `session` (flushed, not committed) and return one dict of
    facts per contact, in the order received:

    reference, received_at (aware UTC), source, verified, is_safer_custody, categories,
    urgency, flags, location (as stored), wing (canonical name, "unknown" when blank),
    responded_at, anonymised, person (the seed's key for who wrote), prisoner (number),
    actions (list of {kind, department, happened_at}), consent_scopes (drafts in order).
    """
    rng = random.Random(rng_seed)
    people = _people(rng)
    facts = _edge_cases(people)
    for month in MONTHS:
        facts.extend(_ordinary_month(rng, month, people))
    facts.sort(key=lambda f: f["received_at"])
    _mark_persistent(facts, config)
    for fact in facts:
        fact["anonymised"] = fact.pop("anonymise")
    counters: dict[int, int] = {}
    for fact in facts:
        year = fact["received_at"].astimezone(LONDON).year
        counters[year] = counters.get(year, 0) + 1
        fact["reference"] = f"SC-{year}-{counters[year]:05d}"
        _store(session, fact, people[fact["person"]])
    session.flush()
    return [{k: v for k, v in fact.items() if k != "text"} for fact in facts]


def _people(rng: random.Random) -> dict[str, Person]:
    """P01-P30 appear in the hand-made edge cases only; P31-P60 in ordinary months, where
    P31-P36 are regulars who write often."""
    people = {}
    for n in range(1, 61):
        first, surname = FIRST_NAMES[(n - 1) % len(FIRST_NAMES)], SURNAMES[n % len(SURNAMES)]
        key = f"P{n:02d}"
        by_phone_only = n % 5 == 0
        people[key] = Person(
            key=key,
            name=f"{first} {surname}",
            email="" if by_phone_only else f"{first.lower()}.{surname.lower()}{n}@example.com",
            phone=f"07700 900{n:03d}",
            prisoner=f"A{1000 + n * 37:04d}{chr(65 + n % 26)}{chr(66 + n % 25)}",
            prisoner_name=f"{rng.choice(FIRST_NAMES)} {surname}-{n}",
        )
    return people


def _local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LONDON).astimezone(UTC)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _fact(
    received_at: datetime,
    person: str,
    *,
    source: str = "portal_form",
    verified: bool = True,
    safer: bool = True,
    categories: tuple[str, ...] = ("mental_health",),
    urgency: str | None = None,
    location: str = "A wing",
    wing: str | None = None,
    responded_after: timedelta | None = timedelta(hours=5),
    actions: tuple[tuple[str, str | None, timedelta], ...] = (),
    scopes: tuple[str, ...] = ("full",),
    anonymised: bool = False,
    text: str = "",
) -> dict[str, Any]:
    if urgency is None:
        urgency = ("immediate" if "suicide_self_harm" in categories else "urgent") if safer \
            else "not_safer_custody"
    responded_at = received_at + responded_after if responded_after is not None else None
    return {
        "received_at": received_at,
        "source": source,
        "verified": verified,
        "is_safer_custody": safer,
        "categories": list(categories),
        "urgency": urgency,
        "flags": [] if verified or source == "direct_email" else ["unverified_sender"],
        "location": location,
        "wing": wing if wing is not None else (" ".join(location.split()) or "unknown"),
        "responded_at": responded_at if responded_at is None or responded_at <= SEED_NOW
        else None,
        "person": person,
        "actions": [
            {"kind": kind, "department": department, "happened_at": received_at + after}
            for kind, department, after in actions
        ],
        "consent_scopes": list(scopes),
        "anonymise": anonymised,
        "text": text or "I am worried about him and would like someone to check on him.",
    }


def _edge_cases(people: dict[str, Person]) -> list[dict[str, Any]]:
    """Contacts that sit on a boundary of some figure, each named for what it tests."""
    h, m, d = (lambda n: timedelta(hours=n)), (lambda n: timedelta(minutes=n)), \
        (lambda n: timedelta(days=n))
    return [
        # Month edges: 23:30 UTC on 31 Aug is 00:30 BST on 1 Sep (September); 23:30 UTC on
        # 30 Sep is 00:30 BST on 1 Oct; 23:30 UTC on 31 Oct is 23:30 GMT (October).
        _fact(_utc("2026-08-31T23:30"), "P01", categories=("suicide_self_harm",),
              responded_after=m(30), actions=(("welfare_check", None, m(20)),),
              text="He said he wants to end it tonight."),
        _fact(_utc("2026-09-30T23:30"), "P03", safer=False, categories=("visits",),
              responded_after=h(2), scopes=()),
        _fact(_utc("2026-10-31T23:30"), "P04", categories=("bullying_violence_threats",),
              responded_after=h(80), location="C wing"),
        _fact(_utc("2026-11-01T00:10"), "P06", categories=("debt",), urgency="routine",
              responded_after=h(30)),
        _fact(_utc("2026-11-30T23:59"), "P07", categories=("mental_health",),
              responded_after=None, location=""),  # not yet due on 2 December
        # Office hours in local time: 07:30 UTC is 08:30 BST (inside) but 07:30 GMT
        # (outside); 16:30 UTC is 17:30 BST (outside) but 16:30 GMT (inside).
        _fact(_utc("2026-09-14T07:30"), "P08", responded_after=h(3)),
        _fact(_utc("2026-11-16T07:30"), "P09", responded_after=h(3), location="D wing"),
        _fact(_utc("2026-10-23T16:30"), "P11", responded_after=h(20)),
        _fact(_utc("2026-10-26T16:30"), "P12", responded_after=h(20)),
        # Weekends.
        _fact(_local(2026, 11, 7, 11), "P13", categories=("suicide_self_harm",),
              responded_after=h(26), actions=(("acct_opened", None, h(1)),),
              anonymised=True),
        _fact(_local(2026, 10, 4, 14), "P14", source="direct_email", verified=False,
              categories=("drugs_alcohol", "debt"), urgency="routine",
              responded_after=h(47)),
        # The 72-hour deadline: exactly 72 h is in time, a minute more is a breach, and a
        # concern still unanswered after 72 h is one too.
        _fact(_local(2026, 11, 9, 10), "P15", responded_after=h(72), location="B wing"),
        _fact(_local(2026, 11, 11, 10), "P16", responded_after=h(72) + m(1),
              location="b  Wing", wing="B wing"),
        _fact(_local(2026, 11, 10, 12), "P17", categories=("suicide_self_harm",),
              responded_after=None, actions=(("welfare_check", None, m(40)),)),
        _fact(_local(2026, 9, 22, 15), "P18", responded_after=None, location="Segregation unit"),
        # Actioned within an hour: by an action alone, by the response alone, or not.
        _fact(_local(2026, 11, 12, 9), "P19", responded_after=h(30),
              actions=(("welfare_check", None, m(45)),)),
        _fact(_local(2026, 11, 12, 14), "P21", responded_after=m(59), scopes=("wellbeing",)),
        _fact(_local(2026, 11, 13, 9), "P22", responded_after=h(2),
              actions=(("welfare_check", None, m(61)),)),
        # Referrals: followed up by the same department later; followed up only by another
        # department; "followed up" before the referral was made; no department at all.
        _fact(_local(2026, 11, 17, 10), "P23", categories=("mental_health",),
              responded_after=h(4),
              actions=(("referral", "mental_health", h(2)),
                       ("referral_follow_up", "mental_health", d(3)),
                       ("referral", "chaplaincy", h(3)),
                       ("referral_follow_up", "healthcare", d(2)))),
        _fact(_local(2026, 11, 18, 10), "P24", categories=("drugs_alcohol",),
              responded_after=h(6),
              actions=(("referral_follow_up", "security", h(1)),
                       ("referral", "security", h(2)),
                       ("referral", None, h(3)),
                       ("referral_follow_up", None, d(1)))),
        _fact(_local(2026, 10, 6, 11), "P26", categories=("physical_health_medication",),
              responded_after=h(8),
              actions=(("referral", "healthcare", h(1)),
                       ("referral_follow_up", "healthcare", d(4)))),
        # Consent: the first draft decides (full, then none: consented); restricted and
        # none are not consented; an enquiry's draft is left out.
        _fact(_local(2026, 11, 19, 10), "P27", responded_after=h(9), scopes=("full", "none")),
        _fact(_local(2026, 11, 19, 11), "P28", responded_after=h(9), scopes=("restricted",)),
        _fact(_local(2026, 11, 19, 12), "P29", responded_after=h(9), scopes=("none",)),
        _fact(_local(2026, 11, 19, 13), "P30", safer=False, categories=("property",),
              responded_after=h(1), scopes=("none",)),
        _fact(_local(2026, 11, 20, 13), "P26", responded_after=None, scopes=()),
        # One person writing again and again about the same prisoner: the third and
        # fourth in a week are persistent; a fifth weeks later is a repeat only.
        *[
            _fact(_local(2026, 11, day, 9 + day % 5), "P25", categories=("mental_health",),
                  responded_after=h(20))
            for day in (3, 4, 5, 6, 25)
        ],
        # A repeat that retention has anonymised cannot be recognised any more.
        _fact(_local(2026, 9, 8, 10), "P05", responded_after=h(10), anonymised=True),
        _fact(_local(2026, 9, 9, 10), "P05", responded_after=h(10)),
        _fact(_local(2026, 9, 10, 10), "P05", responded_after=h(10)),
        # Not for the safer custody route, and a message about nothing triage could name.
        _fact(_local(2026, 9, 2, 19), "P10", safer=False, categories=(),
              responded_after=None, scopes=()),
    ]


def _ordinary_month(
    rng: random.Random, month: date, people: dict[str, Person]
) -> list[dict[str, Any]]:
    regulars = [f"P{n}" for n in range(31, 37)]
    others = [f"P{n}" for n in range(37, 61)]
    facts = []
    days = (date(month.year + month.month // 12, month.month % 12 + 1, 1) - month).days
    for _ in range(rng.randint(28, 40)):
        day = month + timedelta(days=rng.randrange(days))
        if day.weekday() < 5 and rng.random() < 0.7:
            hour, minute = rng.randint(8, 16), rng.randrange(60)
        else:
            hour, minute = rng.randrange(24), rng.randrange(60)
        received = _local(day.year, day.month, day.day, hour, minute)
        person = rng.choice(regulars if rng.random() < 0.3 else others)
        source = "direct_email" if rng.random() < 0.3 and people[person].email \
            else "portal_form"
        verified = source == "portal_form" and rng.random() < 0.85
        safer = rng.random() < 0.78
        location = _weighted(rng, WINGS)
        wing = location or "unknown"
        if location and rng.random() < 0.1:
            location = location.lower().replace(" ", "  ")
        if safer:
            categories = [_weighted(rng, SAFETY)]
            if rng.random() < 0.3:
                second = _weighted(rng, SAFETY)
                if second not in categories:
                    categories.append(second)
            if "suicide_self_harm" in categories:
                urgency = "immediate" if rng.random() < 0.4 else "urgent"
            else:
                urgency = "urgent" if rng.random() < 0.4 else "routine"
            responded_after = _response_delay(rng)
            actions = _actions(rng, categories)
            scopes = tuple(_weighted(rng, SCOPES) for _ in range(1 if rng.random() < 0.8
                                                                 else 2)) \
                if rng.random() < 0.85 else ()
        else:
            categories = [rng.choice(ENQUIRIES)]
            urgency = "not_safer_custody"
            responded_after = timedelta(hours=rng.uniform(0.05, 30)) \
                if rng.random() < 0.75 else None
            actions = (("call_back", None, timedelta(hours=rng.uniform(1, 48))),) \
                if rng.random() < 0.1 else ()
            scopes = (_weighted(rng, SCOPES),) if rng.random() < 0.3 else ()
        fact = _fact(received, person, source=source, verified=verified, safer=safer,
                     categories=tuple(categories), urgency=urgency, location=location,
                     wing=wing, responded_after=responded_after, actions=actions,
                     scopes=scopes, anonymised=rng.random() < 0.1)
        fact["actions"] = [a for a in fact["actions"] if a["happened_at"] <= SEED_NOW]
        facts.append(fact)
    return facts


def _response_delay(rng: random.Random) -> timedelta | None:
    band = rng.random()
    if band < 0.2:
        return timedelta(hours=rng.uniform(0.1, 1))
    if band < 0.6:
        return timedelta(hours=rng.uniform(1, 24))
    if band < 0.85:
        return timedelta(hours=rng.uniform(24, 72))
    if band < 0.95:
        return timedelta(hours=rng.uniform(72, 130))
    return None


def _actions(
    rng: random.Random, categories: list[str]
) -> tuple[tuple[str, str | None, timedelta], ...]:
    hours = timedelta(hours=1)
    actions: list[tuple[str, str | None, timedelta]] = []
    if rng.random() < 0.75:
        first = rng.uniform(0.1, 0.95) if rng.random() < 0.5 else rng.uniform(1.05, 30)
        kind = rng.choice(("welfare_check", "welfare_check", "call_back", "nomis_updated"))
        actions.append((kind, None, first * hours))
    if "suicide_self_harm" in categories and rng.random() < 0.5:
        actions.append(("acct_opened", None, rng.uniform(0.5, 6) * hours))
    if "bullying_violence_threats" in categories and rng.random() < 0.3:
        actions.append(("csip_referral", None, rng.uniform(2, 48) * hours))
    if rng.random() < 0.45:
        for department in rng.sample(DEPARTMENTS, rng.choice((1, 1, 2))):
            made = rng.uniform(2, 48) * hours
            actions.append(("referral", department, made))
            roll = rng.random()
            if roll < 0.6:
                actions.append(("referral_follow_up", department,
                                made + rng.uniform(24, 144) * hours))
            elif roll < 0.7:
                other = rng.choice([d for d in DEPARTMENTS if d != department])
                actions.append(("referral_follow_up", other, made + 48 * hours))
            elif roll < 0.75:
                actions.append(("referral_follow_up", department, made - hours))
    if rng.random() < 0.2:
        actions.append(("outcome", None, rng.uniform(24, 240) * hours))
    return tuple(actions)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _mark_persistent(facts: list[dict[str, Any]], config: Config) -> None:
    """Flag a contact as mailbot's deadline watcher would: the threshold-th or later
    from the same person about the same prisoner within the window."""
    window = timedelta(days=config.deadlines.persistent_window_days)
    for index, fact in enumerate(facts):
        earlier = [
            other for other in facts[: index + 1]
            if other["person"] == fact["person"]
            and fact["received_at"] - other["received_at"] <= window
        ]
        if len(earlier) >= config.deadlines.persistent_threshold:
            fact["flags"] = [*fact["flags"], "persistent_contact"]


def _closed(responded: datetime | None) -> datetime | None:
    """Staff close a concern some days after answering it, if that day has come."""
    if responded is None or responded + timedelta(days=5) > SEED_NOW:
        return None
    return responded + timedelta(days=5)


def _store(session: Session, fact: dict[str, Any], person: Person) -> None:
    fact["prisoner"] = person.prisoner
    gone = fact["anonymised"]
    direct = fact["source"] == "direct_email"
    email = person.email
    if email and fact["reference"].endswith(("3", "7")):
        email = email.replace(person.name.split()[0].lower(), person.name.split()[0], 1)
    phone = person.phone.replace(" ", "") if fact["reference"].endswith("5") else person.phone
    raw = (
        f"From: {person.name} <{email or 'portal@portal.example.org'}>\r\n"
        f"Subject: {'Worried about my son' if direct else 'Safer Custody Contact Form'}\r\n"
        f"\r\n{fact['text']}\r\n"
    ).encode()
    message = StoredMessage(
        sha256=hashlib.sha256(fact["reference"].encode()).hexdigest(),
        message_id=f"<{fact['reference'].lower()}@seed.example>",
        mailbox_folder="INBOX",
        received_at=fact["received_at"],
        ingested_at=fact["received_at"] + timedelta(minutes=1),
        size=len(raw),
        kind=fact["source"],
        verified=fact["verified"],
        disposition="logged",
        reason="seeded",
        sender=None if gone else email or "portal@portal.example.org",
        subject=None if gone else "Safer Custody Contact Form",
        raw=None if gone else raw,
    )
    responded = fact["responded_at"]
    contact = Contact(
        reference=fact["reference"],
        message=message,
        source=fact["source"],
        verified=fact["verified"],
        received_at=fact["received_at"],
        logged_at=fact["received_at"] + timedelta(minutes=1),
        status="responded" if responded else "new",
        submitter_name="" if gone else person.name,
        submitter_email="" if gone else email,
        submitter_email_valid=bool(email) and not gone,
        submitter_phone="" if gone else phone,
        relationship_to_prisoner="" if gone else "Mother",
        prisoner_name="" if gone else person.prisoner_name,
        prisoner_number="" if gone else person.prisoner,
        establishment="" if gone else "HMP Exampletown",
        location=fact["location"],
        concern_text="" if gone else fact["text"],
        flags=list(fact["flags"]),
        is_safer_custody=fact["is_safer_custody"],
        categories=list(fact["categories"]),
        urgency=fact["urgency"],
        triage_reasons=["seeded"],
        responded_at=responded,
        responded_by="officer.a" if responded else None,
        closed_at=_closed(responded),
        anonymised_at=SEED_NOW if gone else None,
    )
    session.add(contact)
    for n, scope in enumerate(fact["consent_scopes"], 1):
        session.add(Draft(
            contact=contact, template="acknowledgement", consent_scope=scope,
            status="sent" if responded and n == len(fact["consent_scopes"]) else "superseded",
            recipient="" if gone else email, subject="Your contact with HMP Exampletown",
            body_text="" if gone else "Thank you for contacting us.",
            message_id=f"<draft-{n}-{fact['reference'].lower()}@seed.example>",
            created_at=fact["received_at"] + timedelta(minutes=2 + n),
        ))
    for action in fact["actions"]:
        session.add(ConcernAction(
            contact=contact, kind=action["kind"], department=action["department"],
            happened_at=action["happened_at"], recorded_at=action["happened_at"],
            by="officer.b",
        ))
    if responded and email:
        session.add(OutboxEmail(
            contact=contact, kind="acknowledgement", recipient="" if gone else email,
            subject="Your contact with HMP Exampletown",
            message_id=f"<reply-{fact['reference'].lower()}@seed.example>",
            status="sent", created_at=responded, sent_at=responded,
        ))
