"""The direct email parser: who wrote, which prisoner, what they said; never raising."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import from_dict
from mailbot.parsers.contact import Flag, ParsedContact, Source
from mailbot.parsers.direct_email import parse_direct_email
from mailbot.parsers.mime import read_message
from tests.conftest import BOUNCES, SAMPLES

CONFIG = from_dict(
    {
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {"host": "localhost", "username": "u", "password_env": "X"},
        "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
    }
)


def email(
    body: str = "Please check on my son.",
    subject: str = "My son",
    sender: str = "Karen Sample <karen.sample@example.com>",
    subtype: str = "plain",
    **headers: str,
) -> ParsedContact:
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body, subtype=subtype)
    return parse_direct_email(read_message(msg.as_bytes()), CONFIG)


def test_sample_05_direct_email():
    path = SAMPLES / "05-direct-email.eml"
    contact = parse_direct_email(read_message(path.read_bytes()), CONFIG)
    assert contact.source is Source.DIRECT_EMAIL
    assert contact.subject == "My son Ryan Sample A4455CD"
    assert contact.submitter.name == "Karen Sample"
    assert contact.submitter.email == "karen.sample@example.com"
    assert contact.submitter.email_valid is True
    assert contact.submitter.phone == "07700 900456"
    assert contact.prisoner.number == "A4455CD"
    assert contact.prisoner.number_as_typed == "A4455CD"
    assert contact.concern_text == (
        "Hello,\n\n"
        "My son Ryan rang me last night and said he is being threatened on his wing.\n"
        "Please can somebody check on him.\n\n"
        "Karen\n"
        "07700 900456"
    )
    assert contact.portal_reference == ""
    assert contact.submitted_at is None
    assert (contact.flags, contact.problems) == ([], [])


# --- Prisoner numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "number", "typed"),
    [
        ("About A1234BC", "", "A1234BC", "A1234BC"),
        ("My son", "His number is a 1234 bc, he is on C wing.", "A1234BC", "a 1234 bc"),
        ("My son", "Number: G-1029-HT.", "G1029HT", "G-1029-HT"),
        ("My son", "(b1234cd)", "B1234CD", "b1234cd"),
        ("Ref A1234BC", "his number is B9876ZY", "A1234BC", "A1234BC"),
        ("My son", "He owes a 1000 to someone on the wing", "", ""),
        ("My son", "He owes A 1000 TO someone", "A1000TO", "A 1000 TO"),
        ("My son", "Account XA1234BCX and 12A1234BC", "", ""),
        ("My son", "She paid a 1000 to him. His number is a 4321 xy", "A4321XY", "a 4321 xy"),
        ("My son", "Call me about a1000to please", "A1000TO", "a1000to"),
    ],
)
def test_prisoner_number_found_in_subject_then_body(subject, body, number, typed):
    contact = email(body or "Please check on him.", subject)
    assert (contact.prisoner.number, contact.prisoner.number_as_typed) == (number, typed)


def test_several_prisoner_numbers_are_noted():
    contact = email("He used to be A1111AA, now B2222BB.", "About C3333CC")
    assert contact.prisoner.number == "C3333CC"
    assert contact.problems == [
        "several prisoner numbers in the email (C3333CC, A1111AA, B2222BB); C3333CC was taken"
    ]


def test_the_same_number_typed_twice_is_not_several():
    contact = email("His number is a 1234 bc.", "A1234BC")
    assert contact.prisoner.number == "A1234BC"
    assert contact.problems == []


@settings(max_examples=150, deadline=None)
@given(
    before=st.text(st.sampled_from("abcdefgh ,.\n"), max_size=30),
    after=st.text(st.sampled_from("abcdefgh ,.\n"), max_size=30),
    letter=st.sampled_from("ABCXYZ"),
    digits=st.integers(0, 9999),
    suffix=st.sampled_from(["BC", "HT", "ZZ"]),
    sep=st.sampled_from(["", " ", "-"]),
    lower=st.booleans(),
)
def test_property_a_number_anywhere_in_the_body_is_found(
    before, after, letter, digits, suffix, sep, lower
):
    typed = f"{letter}{sep}{digits:04d}{sep}{suffix}"
    if lower:
        typed = typed.lower()
    contact = email(f"{before} {typed} {after}", "Help")
    assert contact.prisoner.number == f"{letter}{digits:04d}{suffix}"
    assert contact.prisoner.number_as_typed == typed


# --- Phones --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "phone"),
    [
        ("Call me on 07700 900456 any time", "07700 900456"),
        ("mob: 07700900456.", "07700900456"),
        ("Ring 0121 496 0000", "0121 496 0000"),
        ("Ring (020) 7946 0000 please", "(020) 7946 0000"),
        ("Ring +44 7700 900456", "+44 7700 900456"),
        ("Ring +44 (0)20 7946 0000", "+44 (0)20 7946 0000"),
        ("Ring 01632-960-001", "01632-960-001"),
        ("Born 03/02/1998, ref 12345678901", ""),
        ("His number is A1234BC", ""),
        ("Ring 0770 0900", ""),
        ("Call 06700 900456 or 07700 900123", "07700 900123"),
    ],
)
def test_uk_phone_number_found_in_body(body, phone):
    assert email(body).submitter.phone == phone


def test_phone_search_is_fast_on_hostile_text():
    import time

    body = ("0" + " -" * 3 + "1") * 5000 + "(" * 10000 + "07700 900456"
    started = time.perf_counter()
    contact = email(body)
    assert time.perf_counter() - started < 1
    assert contact.submitter.phone == "07700 900456"


# --- Sender, body, decoding --------------------------------------------------------------


def test_html_only_email_is_converted_to_text():
    contact = email("<p>Hello,</p><p>He is <b>not</b> safe &amp; scared.</p>", subtype="html")
    assert contact.concern_text == "Hello,\nHe is not safe & scared."


def test_body_is_kept_exactly_except_surrounding_blank_lines():
    contact = email("\n\n  Hi,\n\n> quoted: yes\nKaren  \n\n\n")
    assert contact.concern_text == "  Hi,\n\n> quoted: yes\nKaren  "


def test_email_with_no_text_needs_review():
    msg = EmailMessage()
    msg["From"] = "k@example.com"
    msg.set_content(b"%PDF", maintype="application", subtype="pdf")
    contact = parse_direct_email(msg, CONFIG)
    assert contact.concern_text == ""
    assert contact.flags == [Flag.NEEDS_REVIEW]
    assert contact.problems == ["the email has no text"]


@pytest.mark.parametrize(
    "sender",
    ["a@example.com, b@example.com", "not an address", ""],
)
def test_sender_that_is_not_one_valid_address_is_flagged(sender):
    contact = email(sender=sender)
    assert contact.submitter.email_valid is False
    assert Flag.INVALID_EMAIL in contact.flags


def test_sender_name_with_raw_8bit_bytes_is_read_as_utf8():
    raw = (
        "From: Ren\u00e9e Dubois <renee@example.fr>\r\nSubject: Caf\u00e9\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    ).encode()
    contact = parse_direct_email(read_message(raw), CONFIG)
    assert contact.submitter.name == "Renée Dubois"
    assert contact.subject == "Café"


def test_different_reply_to_is_noted_not_used():
    contact = email(Reply_To="other@example.com")
    assert contact.submitter.email == "karen.sample@example.com"
    assert contact.problems == ["replies would go to other@example.com (Reply-To)"]
    assert email(Reply_To="Karen.Sample@example.com").problems == []


def test_decoding_problem_is_flagged():
    raw = (
        b"From: k@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=x-foo\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nRen\xc3\xa9e\r\n"
    )
    contact = parse_direct_email(read_message(raw), CONFIG)
    assert contact.concern_text == "Renée"
    assert contact.flags == [Flag.DECODING_PROBLEM]
    assert contact.problems == ["unknown charset 'x-foo' in text/plain; decoded as UTF-8"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1500))
def test_property_never_raises_on_any_bytes(noise):
    for raw in (noise, b"From: " + noise[:80] + b"\r\nSubject: " + noise[80:160] + b"\r\n\r\n"):
        contact = parse_direct_email(read_message(raw), CONFIG)
        assert contact.source is Source.DIRECT_EMAIL
        contact.concern_text.encode("utf-8")
        contact.subject.encode("utf-8")
        contact.submitter.name.encode("utf-8")


def test_real_world_bounces_parse_without_raising():
    for path in sorted(BOUNCES.iterdir()):
        contact = parse_direct_email(read_message(path.read_bytes()), CONFIG)
        assert contact.concern_text, path.name
