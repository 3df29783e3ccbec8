"""Casework: records what staff did for a concern, and its closing, for the log.

Actions are what the safety meeting asks about: welfare checks, referrals to a department
(and whether a follow-up was recorded), ACCT opened or reviewed, CSIP referrals, NOMIS/DPS
updated, call backs, outcomes. A concern is closed only by a named member of staff, never
automatically. Every change goes to the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.casework.audit import record_event
from mailbot.db.models import ConcernAction, Contact, utcnow
from mailbot.errors import RefusedError
from mailbot.parsers.contact import ContactStatus


class ActionKind(StrEnum):
    """What staff did about a concern."""

    WELFARE_CHECK = "welfare_check"
    REFERRAL = "referral"
    REFERRAL_FOLLOW_UP = "referral_follow_up"
    ACCT_OPENED = "acct_opened"
    ACCT_REVIEWED = "acct_reviewed"
    CSIP_REFERRAL = "csip_referral"
    NOMIS_UPDATED = "nomis_updated"
    CALL_BACK = "call_back"
    OUTCOME = "outcome"


ACTION_KINDS = tuple(ActionKind)
DEPARTMENTS = (
    "healthcare",
    "mental_health",
    "chaplaincy",
    "family_services",
    "security",
    "omu",
    "substance_misuse",
)
CLOSED = ContactStatus.CLOSED


class CaseworkError(RefusedError, ValueError):
    """An action or closing that cannot be recorded as given; says what to fix."""


def find(session: Session, reference: str) -> Contact:
    contact = session.execute(
        select(Contact).where(Contact.reference == reference)
    ).scalar_one_or_none()
    if contact is None:
        raise CaseworkError(f"no concern {reference}")
    return contact


def record_action(
    session: Session,
    contact: Contact,
    *,
    kind: str,
    by: str,
    note: str = "",
    outcome: str = "",
    department: str | None = None,
    when: datetime | None = None,
) -> ConcernAction:
    if kind not in ACTION_KINDS:
        raise CaseworkError(f"--kind must be one of {', '.join(ACTION_KINDS)}")
    if not by.strip():
        raise CaseworkError("--by must name the member of staff")
    if kind in ("referral", "referral_follow_up"):
        if department not in DEPARTMENTS:
            raise CaseworkError(
                f"a {kind} needs --department, one of {', '.join(DEPARTMENTS)}"
            )
    elif department is not None:
        raise CaseworkError("--department goes only with a referral or its follow-up")
    if when is not None and when.tzinfo is None:
        raise CaseworkError("--when needs a time zone, e.g. 2026-11-24T14:30+00:00")
    action = ConcernAction(
        contact=contact, kind=kind, department=department, happened_at=when or utcnow(),
        recorded_at=utcnow(), by=by, note=note, outcome=outcome,
    )
    session.add(action)
    session.flush()
    record_event(session, actor=by, action=f"action_{kind}", contact_id=contact.id,
                 detail={"action": action.id, "department": department})
    return action


def close(session: Session, contact: Contact, *, by: str, outcome: str) -> None:
    if not by.strip():
        raise CaseworkError("--by must name the member of staff")
    if not outcome.strip():
        raise CaseworkError("--outcome must say how the concern ended")
    if contact.status == CLOSED:
        raise CaseworkError(f"{contact.reference} is already closed")
    contact.status, contact.closed_at, contact.closed_by = CLOSED, utcnow(), by
    contact.outcome = outcome
    record_event(session, actor=by, action="concern_closed", contact_id=contact.id)


def referral_followed_up(contact: Contact, referral: ConcernAction) -> bool:
    return any(
        action.kind == "referral_follow_up"
        and action.department == referral.department
        and action.happened_at >= referral.happened_at
        for action in contact.actions
    )
