"""The parse stage for emails families write themselves: decides who wrote, about which
prisoner, and what they said, as far as a free-form email lets us tell.

Best effort and never raises: the sender comes from From, the concern is the whole
body, and the prisoner number and a phone number are looked for in the text. What was
found is a hint for staff, who read the email itself.
"""

from __future__ import annotations

import re
from email.message import Message

from mailbot.config import Config
from mailbot.parsers.contact import Flag, ParsedContact, Source
from mailbot.parsers.mime import (
    body_text,
    header_addresses,
    header_text,
    html_to_text,
    trim_blank_lines,
)
from mailbot.parsers.portal_form import check_email_address, normalise_prisoner_number

# One letter, four digits, two letters; families add spaces, hyphens or dots.
_NUMBER_IN_TEXT = re.compile(r"\b[A-Za-z][ \t.\-]{0,2}[0-9]{4}[ \t.\-]{0,2}[A-Za-z]{2}\b")
# "a 1000 to" in "he owes a 1000 to..." has the shape of a spaced, lower-case number.
# Spaced numbers ending in one of these words are taken only when typed in capitals.
_COMMON_WORDS = frozenset(
    "am an as at be by do go he if in is it me my no of on or so to up us we".split()
)
# UK numbers: 07700 900123, 0121 496 0000, (020) 7946 0000, +44 7700 900123,
# +44 (0)20 7946 0000. Separators are at most two characters between digits, so the
# pattern cannot backtrack badly.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+44[ \t]?(?:\(0\)[ \t]?)?|\(?0)[0-9](?:[ \t\-()]{0,2}[0-9]){8,10}(?![0-9])"
)


def parse_direct_email(msg: Message, config: Config) -> ParsedContact:
    """Read a family's own email into a `ParsedContact`. Never raises."""
    contact = ParsedContact(source=Source.DIRECT_EMAIL, subject=header_text(msg, "Subject"))
    _read_sender(msg, contact)

    body = body_text(msg)
    if body.problems:
        contact.flag(Flag.DECODING_PROBLEM)
        contact.problems.extend(body.problems)
    if body.plain is not None and body.plain.strip():
        contact.concern_text = trim_blank_lines(body.plain.split("\n"))
    elif body.html is not None:
        contact.concern_text = html_to_text(body.html)
    if not contact.concern_text:
        contact.flag(Flag.NEEDS_REVIEW)
        contact.problems.append("the email has no text")

    _find_prisoner_number(contact)
    phone = _PHONE.search(contact.concern_text)
    while phone is not None and not _is_uk_phone(phone.group()):
        phone = _PHONE.search(contact.concern_text, phone.end())
    if phone is not None:
        found = phone.group()
        contact.submitter.phone = found if ")" in found else found.lstrip("(")
    return contact


def _read_sender(msg: Message, contact: ParsedContact) -> None:
    senders = header_addresses(msg, "From")
    submitter = contact.submitter
    if len(senders) == 1:
        submitter.name, typed = senders[0]
        submitter.email, submitter.email_valid = check_email_address(typed)
    else:
        submitter.email = header_text(msg, "From")
    if not submitter.email_valid:
        contact.flag(Flag.INVALID_EMAIL)
        contact.problems.append(f"sender address {submitter.email!r} is not one valid address")
    # Staff answering by hand reach the Reply-To address, so they should know it differs.
    reply_to = header_addresses(msg, "Reply-To")
    if submitter.email_valid and reply_to:
        others = [a for _, a in reply_to if a.casefold() != submitter.email.casefold()]
        if others:
            contact.problems.append(f"replies would go to {', '.join(others)} (Reply-To)")


def _find_prisoner_number(contact: ParsedContact) -> None:
    found: list[tuple[str, str]] = []  # (normalised, as typed), best first
    for text in (contact.subject, contact.concern_text):
        candidates = []
        for match in _NUMBER_IN_TEXT.finditer(text):
            typed = match.group()
            compact = typed.isalnum()
            if not compact and not typed.isupper() and typed[-2:].lower() in _COMMON_WORDS:
                continue
            candidates.append((not compact, match.start(), typed))
        found.extend((normalise_prisoner_number(t), t) for _, _, t in sorted(candidates))
    numbers = list(dict.fromkeys(n for n, _ in found if n))
    if not numbers:
        return
    prisoner = contact.prisoner
    prisoner.number = numbers[0]
    prisoner.number_as_typed = next(t for n, t in found if n == numbers[0])
    if len(numbers) > 1:
        contact.problems.append(
            f"several prisoner numbers in the email ({', '.join(numbers)}); {numbers[0]} was taken"
        )


def _is_uk_phone(typed: str) -> bool:
    digits = "".join(c for c in typed if c.isdigit())
    if digits.startswith("44"):
        digits = digits[2:] if digits[2:3] == "0" else "0" + digits[2:]
    return len(digits) in (10, 11) and digits[0] == "0" and digits[1] in "1235789"
