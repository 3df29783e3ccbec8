"""The consent register: decides what may be shared with a contact about a prisoner.

Per prisoner (NOMIS number) and contact (email address, else name and phone), staff record
what the prisoner consented to share: `none`, `wellbeing` (that they are safe and being
supported) or `full` (actions taken: welfare check, ACCT, referrals). A contact can be
recorded as `restricted` (restraining order, restricted contact): they only ever hear that
their concern was received. Consent can be withdrawn at any time and withdrawal wins from
that moment. Every change is written to the audit trail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbot.casework.audit import record_event
from mailbot.db.models import ConsentRecord, Contact, utcnow
from mailbot.errors import RefusedError
from mailbot.parsers.portal_form import normalise_prisoner_number


class Scope(StrEnum):
    """What the prisoner agreed may be shared with a contact; restricted: nothing, ever."""

    NONE = "none"
    WELLBEING = "wellbeing"
    FULL = "full"
    RESTRICTED = "restricted"


SCOPES = (Scope.NONE, Scope.WELLBEING, Scope.FULL)
RESTRICTED = Scope.RESTRICTED
# When several records are in force, the most protective one wins.
_PROTECTION = {RESTRICTED: 0, "none": 1, "wellbeing": 2, "full": 3}


class ConsentError(RefusedError, ValueError):
    """A consent command that cannot be carried out (bad number, scope or contact)."""


def contact_key(email: str = "", name: str = "", phone: str = "") -> str:
    """One stable key per contact: the email address, else name and phone together."""
    if email.strip():
        return email.strip().lower()
    digits = re.sub(r"\D", "", phone)
    folded = " ".join(name.lower().split())
    if not folded or not digits:
        raise ConsentError("a contact needs an email address, or a name and a phone number")
    return f"name:{folded}|phone:{digits}"


def parse_contact(text: str) -> str:
    """`jane@example.com`, or `Jane Example|07700 900123` (name and phone)."""
    if "@" in text and "|" not in text:
        return contact_key(email=text)
    name, _, phone = text.partition("|")
    return contact_key(name=name, phone=phone)


def keys_for(contact: Contact) -> list[str]:
    keys = []
    if contact.submitter_email:
        keys.append(contact_key(email=contact.submitter_email))
    try:
        keys.append(contact_key(name=contact.submitter_name, phone=contact.submitter_phone))
    except ConsentError:
        pass
    return keys


def _prisoner(number: str) -> str:
    normalised = normalise_prisoner_number(number)
    if not normalised:
        raise ConsentError(f"{number!r} is not a prisoner number like A1234BC")
    return normalised


@dataclass(frozen=True)
class ConsentState:
    scope: str  # restricted | none | wellbeing | full
    record_id: int | None

    @property
    def restricted(self) -> bool:
        return self.scope == RESTRICTED


def in_force(
    session: Session, prisoner_number: str, keys: list[str], at: datetime | None = None
) -> ConsentState:
    """What is in force for this prisoner and any of the contact's keys at `at`."""
    if not prisoner_number or not keys:
        return ConsentState("none", None)
    at = at or utcnow()
    records = session.execute(
        _records_at(at).where(ConsentRecord.prisoner_number == prisoner_number)
        .where(ConsentRecord.contact_key.in_(keys))
    ).scalars().all()
    return _state(list(records))


def _records_at(at: datetime) -> Any:
    """The consent records in force at `at`, newest first."""
    return (select(ConsentRecord)
            .where(ConsentRecord.recorded_at <= at)
            .where(or_(ConsentRecord.withdrawn_at.is_(None), ConsentRecord.withdrawn_at > at))
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc()))


def _state(records: list[ConsentRecord]) -> ConsentState:
    """What is in force, from the records in force for one prisoner and contact (newest
    first)."""
    if not records:
        return ConsentState("none", None)
    restriction = next((r for r in records if r.scope == RESTRICTED), None)
    if restriction is not None:
        return ConsentState(RESTRICTED, restriction.id)
    # The newest consent per key; across keys, the most protective.
    newest: dict[str, ConsentRecord] = {}
    for record in records:
        newest.setdefault(record.contact_key, record)
    chosen = min(newest.values(), key=lambda r: _PROTECTION[r.scope])
    return ConsentState(chosen.scope, chosen.id)


def for_contact(session: Session, contact: Contact, at: datetime | None = None) -> ConsentState:
    return in_force(session, contact.prisoner_number, keys_for(contact), at)


def for_contacts(
    session: Session, contacts: list[Contact], at: datetime | None = None
) -> dict[int, ConsentState]:
    """`for_contact` for many contacts at once (a page of the console's queue): one query
    instead of one per contact, the same rule. Keyed by contact id."""
    at = at or utcnow()
    wanted = {c.id: (c.prisoner_number, keys_for(c)) for c in contacts}
    numbers = sorted({number for number, keys in wanted.values() if number and keys})
    found: dict[str, list[ConsentRecord]] = {}
    if numbers:
        for record in session.execute(
                _records_at(at).where(ConsentRecord.prisoner_number.in_(numbers))).scalars():
            found.setdefault(record.prisoner_number, []).append(record)
    return {
        contact_id: _state([r for r in found.get(number, []) if r.contact_key in keys])
        if number and keys else ConsentState("none", None)
        for contact_id, (number, keys) in wanted.items()
    }


def grant(
    session: Session, *, prisoner: str, contact: str, scope: str, by: str, note: str = ""
) -> ConsentRecord:
    if scope not in SCOPES:
        raise ConsentError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return _add(session, _prisoner(prisoner), parse_contact(contact), scope, by, note,
                "consent_granted")


def restrict(
    session: Session, *, prisoner: str, contact: str, by: str, note: str = ""
) -> ConsentRecord:
    return _add(session, _prisoner(prisoner), parse_contact(contact), RESTRICTED, by, note,
                "contact_restricted")


def withdraw(session: Session, *, prisoner: str, contact: str, by: str, note: str = "") -> int:
    """Withdraw every consent in force for the pair (a restriction stays). Returns how many."""
    number, key = _prisoner(prisoner), parse_contact(contact)
    now = utcnow()
    records = session.execute(
        select(ConsentRecord)
        .where(ConsentRecord.prisoner_number == number)
        .where(ConsentRecord.contact_key == key)
        .where(ConsentRecord.scope != RESTRICTED)
        .where(ConsentRecord.withdrawn_at.is_(None))
    ).scalars().all()
    for record in records:
        record.withdrawn_at, record.withdrawn_by = now, by
    record_event(session, actor=by, action="consent_withdrawn",
                 detail={"prisoner": number, "contact": key, "records": len(records),
                         "note": note})
    return len(records)


def _add(
    session: Session, number: str, key: str, scope: str, by: str, note: str, action: str
) -> ConsentRecord:
    if not by.strip():
        raise ConsentError("--by must name the member of staff recording this")
    record = ConsentRecord(prisoner_number=number, contact_key=key, scope=scope,
                           recorded_by=by, recorded_at=utcnow(), note=note)
    session.add(record)
    session.flush()
    record_event(session, actor=by, action=action,
                 detail={"prisoner": number, "contact": key, "scope": scope, "note": note,
                         "consent_id": record.id})
    return record


def listing(session: Session, prisoner: str | None = None) -> list[ConsentRecord]:
    query = select(ConsentRecord).order_by(ConsentRecord.prisoner_number, ConsentRecord.id)
    if prisoner:
        query = query.where(ConsentRecord.prisoner_number == _prisoner(prisoner))
    return list(session.execute(query).scalars())
