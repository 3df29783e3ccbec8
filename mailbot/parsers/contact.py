"""What a family's contact says, as parsed from a portal form or a direct email.

These are plain values produced by the parsers (pure functions) and consumed by the
store; nothing here touches the network or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Disposition(StrEnum):
    """Where a message ended up; every message ends in exactly one of these."""

    LOGGED = "logged"  # became (or joined) a communications log entry
    IGNORED = "ignored"  # automatic reply, bounce, bulk mail: kept, never answered
    DUPLICATE = "duplicate"  # same Message-ID as a message already recorded
    QUARANTINED = "quarantined"  # could not be read: kept for staff to look at


class ContactStatus(StrEnum):
    """Where a log entry stands: new, responded to (a response reached the family or was
    made by phone), or closed by a person."""

    NEW = "new"
    RESPONDED = "responded"
    CLOSED = "closed"


class Source(StrEnum):
    PORTAL_FORM = "portal_form"
    DIRECT_EMAIL = "direct_email"


class Flag(StrEnum):
    """Flags staff see on a log entry. A flag never hides an entry; it asks for a look."""

    UNVERIFIED_SENDER = "unverified_sender"
    WRONG_ESTABLISHMENT = "wrong_establishment"
    NEEDS_REVIEW = "needs_review"
    INVALID_EMAIL = "invalid_email"
    DECODING_PROBLEM = "decoding_problem"
    REPLY_TO_US = "reply_to_us"
    FROM_OUR_DOMAIN = "from_our_domain"


@dataclass
class Submitter:
    name: str = ""
    email: str = ""  # normalised by email-validator when valid, else as typed
    email_valid: bool = False
    phone: str = ""
    relationship: str = ""
    contact_preference: str = ""


@dataclass
class Prisoner:
    name: str = ""
    number: str = ""  # normalised A1234BC, or "" when what was typed does not fit
    number_as_typed: str = ""
    dob: date | None = None
    dob_as_typed: str = ""
    establishment: str = ""
    location: str = ""


@dataclass
class ParsedContact:
    """One contact from a family member or significant other."""

    source: Source
    submitter: Submitter = field(default_factory=Submitter)
    prisoner: Prisoner = field(default_factory=Prisoner)
    subject: str = ""
    topic: str = ""  # the family's own choice of "What is your concern about?"
    urgency_choice: str = ""  # the family's own choice of "How urgent is your concern?"
    concern_text: str = ""  # exactly as written
    consent_tell_prisoner: str = ""
    consent_understood: str = ""
    portal_reference: str = ""
    submitted_at: datetime | None = None  # timezone-aware
    flags: list[Flag] = field(default_factory=list)
    # Human-readable notes on what could not be read cleanly (shown to staff).
    problems: list[str] = field(default_factory=list)

    def flag(self, flag: Flag) -> None:
        if flag not in self.flags:
            self.flags.append(flag)


class FormParseError(ValueError):
    """A message that looked like a portal form could not be read as one."""
