"""Tests for the recognise stage: what kind of message has arrived."""

from __future__ import annotations

import logging
import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import from_dict
from mailbot.ingest.recognise import (
    MessageKind,
    Recognition,
    recognise,
    recognise_bytes,
)
from mailbot.parsers.mime import read_message
from tests.conftest import BOUNCES, SAMPLES

CONFIG = from_dict(
    {
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {
            "host": "imap.prison.example",
            "username": "safercustody.exampletown@prison.example",
            "password_env": "MAILBOT_TEST_PASSWORD",
        },
        "smtp": {
            "host": "smtp.prison.example",
            "from_address": "safercustody.exampletown@prison.example",
        },
        "state": {"directory": "/nonexistent/mailbot-test-state"},
    }
)

OUR_ID = "mailbot.SC-2026-00042.3f9a01@prison.example"
TRUSTED_PASS = (
    "Authentication-Results: mx.prison.example;\r\n dkim=pass header.d=portal.example.org;"
    "\r\n spf=pass smtp.mailfrom=portal.example.org"
)
PORTAL_FROM = "From: Prisoners' Families Helpline <safercustody-forms@portal.example.org>"
PORTAL_SUBJECT = "Subject: Safer Custody Contact Form - HMP Exampletown"
FAMILY_BODY = "Hello,\r\nMy son A1234BC rang me crying last night. Please check on him.\r\n"


def build(*headers: str, body: str = FAMILY_BODY) -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


def family(*extra: str, subject: str = "Worried about my son", body: str = FAMILY_BODY) -> bytes:
    return build(
        "From: Karen Sample <karen.sample@example.com>",
        "To: safercustody.exampletown@prison.example",
        f"Subject: {subject}",
        "Date: Sat, 14 Nov 2026 21:46:00 +0000",
        "Message-ID: <family-1@example.com>",
        *extra,
        body=body,
    )


def portal(*extra: str, sender: str = PORTAL_FROM, subject: str = PORTAL_SUBJECT) -> bytes:
    return build(
        *extra,
        sender,
        "To: safercustody.exampletown@prison.example",
        "Reply-To: jane.example@example.com",
        subject,
        "Message-ID: <form-1@portal.example.org>",
        body="A new safer custody contact form has been submitted for HMP Exampletown.\r\n",
    )


def kind_of(raw: bytes) -> MessageKind:
    return recognise_bytes(raw, CONFIG).kind


def dsn(original_headers: str, *, recipient: str = "jane.example@example.com") -> bytes:
    return build(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>",
        "To: safercustody.exampletown@prison.example",
        "Subject: Undelivered Mail Returned to Sender",
        "Message-ID: <dsn-1@mx.example.com>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
        body=(
            "--B\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.com\r\n\r\n"
            f"Original-Recipient: rfc822; {recipient}\r\n"
            f"Final-Recipient: rfc822; {recipient.upper()}\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n\r\n"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{original_headers}\r\n"
            "--B--\r\n"
        ),
    )


# --- The samples (tests/data/samples) -----------------------------------------------

SAMPLE_EXPECTATIONS = [
    ("01-portal-safety-multipart.eml", MessageKind.PORTAL_FORM, True),
    ("02-portal-visits-enquiry-plain.eml", MessageKind.PORTAL_FORM, True),
    ("03-portal-html-only-latin1.eml", MessageKind.PORTAL_FORM, True),
    ("04-portal-unverified.eml", MessageKind.PORTAL_FORM, False),
    ("05-direct-email.eml", MessageKind.DIRECT_EMAIL, False),
    ("06-out-of-office.eml", MessageKind.AUTO_REPLY, False),
]


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.mark.parametrize(("name", "kind", "verified"), SAMPLE_EXPECTATIONS)
def test_sample_is_recognised(name: str, kind: MessageKind, verified: bool) -> None:
    result = recognise_bytes(_sample(name), CONFIG)
    assert (result.kind, result.verified) == (kind, verified), result.reasons


def test_sample_recognised_from_a_parsed_message_too() -> None:
    result = recognise(read_message(_sample("01-portal-safety-multipart.eml")), CONFIG)
    assert result.kind is MessageKind.PORTAL_FORM
    assert result.verified
    assert result.message_id == "sample-01@portal.example.org"
    assert result.sender == "safercustody-forms@portal.example.org"
    assert "From matches portal sender" in result.reasons


def test_unverified_sample_says_why() -> None:
    result = recognise_bytes(_sample("04-portal-unverified.eml"), CONFIG)
    assert "no trusted dkim=pass for portal.example.org" in result.reasons


def test_out_of_office_sample_gives_its_header_as_reason() -> None:
    result = recognise_bytes(_sample("06-out-of-office.eml"), CONFIG)
    assert "Auto-Submitted: auto-replied" in result.reasons


# --- Real-world bounces ---------------------------------------------------------------

BOUNCE_FILES = sorted(BOUNCES.glob("*.eml"))


@pytest.mark.parametrize("path", BOUNCE_FILES, ids=lambda p: p.name)
def test_real_world_bounce_is_automatic(path: Path) -> None:
    result = recognise_bytes(path.read_bytes(), CONFIG)
    assert result.kind in (MessageKind.BOUNCE, MessageKind.AUTO_REPLY), result.reasons


def test_all_103_real_world_bounces_are_present() -> None:
    assert len(BOUNCE_FILES) == 103


def test_real_world_dsn_gives_recipient_and_original() -> None:
    result = recognise_bytes((BOUNCES / "dsn_10.eml").read_bytes(), CONFIG)
    assert result.kind is MessageKind.BOUNCE
    assert "anne.person@dom.ain" in result.bounced_recipients
    assert result.original_message_id == "200210211625.12753.b.a.dude@example.com"


# --- Portal forms ---------------------------------------------------------------------


def test_trusted_dkim_pass_from_portal_sender_is_verified() -> None:
    result = recognise_bytes(portal(TRUSTED_PASS), CONFIG)
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, True)


def test_authentication_results_from_another_server_is_not_trusted() -> None:
    forged = "Authentication-Results: mx.attacker.example; dkim=pass header.d=portal.example.org"
    result = recognise_bytes(portal(forged), CONFIG)
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, False)


def test_dkim_fail_is_not_verified() -> None:
    failed = "Authentication-Results: mx.prison.example; dkim=fail header.d=portal.example.org"
    result = recognise_bytes(portal(failed), CONFIG)
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, False)


def test_dkim_pass_for_another_domain_is_not_verified() -> None:
    other = "Authentication-Results: mx.prison.example; dkim=pass header.d=lookalike.example"
    assert not recognise_bytes(portal(other), CONFIG).verified


def test_dkim_pass_for_a_subdomain_is_not_verified() -> None:
    sub = "Authentication-Results: mx.prison.example; dkim=pass header.d=x.portal.example.org"
    assert not recognise_bytes(portal(sub), CONFIG).verified


def test_one_trusted_pass_among_several_headers_suffices() -> None:
    result = recognise_bytes(
        portal(
            "Authentication-Results: mx.attacker.example; dkim=fail header.d=portal.example.org",
            "Authentication-Results: MX.Prison.Example; spf=pass smtp.mailfrom=portal.example.org;"
            " dkim=pass header.d=Portal.Example.Org",
        ),
        CONFIG,
    )
    assert result.verified


def test_unparseable_trusted_header_is_not_verified() -> None:
    garbled = "Authentication-Results: mx.prison.example; dkim=pass (((( header.d="
    result = recognise_bytes(portal(garbled), CONFIG)
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, False)


def test_portal_subject_from_another_address_is_an_unverified_form() -> None:
    result = recognise_bytes(
        portal(TRUSTED_PASS, sender="From: Someone <someone@elsewhere.example>"), CONFIG
    )
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, False)
    assert any("not a portal sender" in reason for reason in result.reasons)


def test_portal_sender_with_a_second_author_is_not_verified() -> None:
    both = f"{PORTAL_FROM}, Someone <someone@elsewhere.example>"
    assert not recognise_bytes(portal(TRUSTED_PASS, sender=both), CONFIG).verified


def test_portal_sender_with_another_subject_is_still_a_form() -> None:
    result = recognise_bytes(portal(TRUSTED_PASS, subject="Subject: New submission"), CONFIG)
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, True)


def test_portal_form_with_auto_submitted_is_still_a_portal_form() -> None:
    result = recognise_bytes(
        portal(TRUSTED_PASS, "Auto-Submitted: auto-generated", "Precedence: bulk"), CONFIG
    )
    assert (result.kind, result.verified) == (MessageKind.PORTAL_FORM, True)


def test_delivery_report_with_portal_subject_is_a_bounce() -> None:
    raw = portal(
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
        "MIME-Version: 1.0",
        sender="From: someone@elsewhere.example",
    )
    assert kind_of(raw) is MessageKind.BOUNCE


# --- Bounces --------------------------------------------------------------------------


def test_dsn_for_our_reply_gives_recipients_and_original_message_id() -> None:
    result = recognise_bytes(
        dsn(f"From: safercustody.exampletown@prison.example\r\nMessage-ID: <{OUR_ID}>"), CONFIG
    )
    assert result.kind is MessageKind.BOUNCE
    assert result.bounced_recipients[0] == "jane.example@example.com"
    assert result.original_message_id == OUR_ID
    assert "multipart/report; report-type=delivery-status" in result.reasons


def test_attached_original_message_gives_its_message_id() -> None:
    raw = build(
        "From: postmaster@mail.example.net",
        "Subject: Undeliverable: Your safer custody contact",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="B"',
        body=(
            "--B\r\nContent-Type: text/plain\r\n\r\nDelivery has failed to jane@example.net\r\n"
            "--B\r\nContent-Type: message/rfc822\r\n\r\n"
            f"From: safercustody.exampletown@prison.example\r\nMessage-ID: <{OUR_ID}>\r\n"
            "Subject: Your safer custody contact\r\n\r\nThank you for contacting us.\r\n--B--\r\n"
        ),
    )
    result = recognise_bytes(raw, CONFIG)
    assert result.kind is MessageKind.BOUNCE
    assert result.original_message_id == OUR_ID


def test_inline_quoted_original_prefers_our_message_id() -> None:
    raw = build(
        "From: MAILER-DAEMON@mx.example.net",
        "Subject: failure notice",
        body=(
            "Hi. This is the qmail-send program at mx.example.net.\r\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
            "<jane@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
            "--- Below this line is a copy of the message.\r\n\r\n"
            "References: <someone-else@example.org>\r\n"
            f"Message-ID: <{OUR_ID}>\r\n"
        ),
    )
    result = recognise_bytes(raw, CONFIG)
    assert result.kind is MessageKind.BOUNCE
    assert result.original_message_id == OUR_ID
    assert "jane@example.net" in result.bounced_recipients


def test_null_return_path_alone_is_a_bounce() -> None:
    assert kind_of(family("Return-Path: <>")) is MessageKind.BOUNCE


def test_null_return_path_with_out_of_office_is_an_auto_reply() -> None:
    raw = family("Return-Path: <>", "Auto-Submitted: auto-replied", subject="Out of office")
    assert kind_of(raw) is MessageKind.AUTO_REPLY


def test_mail_system_sender_is_a_bounce() -> None:
    raw = family(subject="Processing Error").replace(
        b"Karen Sample <karen.sample@example.com>", b"Mail Delivery System <MAILER-DAEMON@x.org>"
    )
    assert kind_of(raw) is MessageKind.BOUNCE


def test_family_subject_with_undeliverable_in_a_sentence_is_direct_email() -> None:
    subject = "My letters to my son keep coming back undeliverable, is he ok?"
    assert kind_of(family(subject=subject)) is MessageKind.DIRECT_EMAIL


def test_family_subject_starting_like_a_bounce_is_direct_email_without_machine_signs() -> None:
    # Letters returned by the prison are something families write about.
    for subject in ("Returned mail - my letters were sent back", "Delivery failure of parcel"):
        assert kind_of(family(subject=subject)) is MessageKind.DIRECT_EMAIL, subject


def test_family_forwarding_a_bounce_is_direct_email() -> None:
    body = (
        "I tried to email his offender manager and got this back, can you help?\r\n\r\n"
        "---------- Forwarded message ---------\r\n"
        "The following addresses had permanent fatal errors -----\r\n"
        "<om@justice.example>\r\n"
        "Your message could not be delivered to om@justice.example\r\n"
    )
    raw = family(subject="Fwd: Undeliverable: my son", body=body)
    assert kind_of(raw) is MessageKind.DIRECT_EMAIL


# --- Automatic replies ----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "Auto-Submitted: auto-notified; owner-email=x@example.com",
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "Precedence: auto_reply",
    ],
)
def test_auto_reply_header_makes_an_auto_reply(header: str) -> None:
    assert kind_of(family(header)) is MessageKind.AUTO_REPLY


def test_auto_submitted_no_is_not_automatic() -> None:
    assert kind_of(family("Auto-Submitted: no")) is MessageKind.DIRECT_EMAIL


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Your safer custody contact",
        "Auto: Your safer custody contact",
        "Out of Office: Your safer custody contact",
        "Out of Office AutoReply: Your safer custody contact",
        "Abwesenheitsnotiz: Ihre Nachricht",
        "Réponse automatique : votre message",
    ],
)
def test_auto_reply_subject_makes_an_auto_reply(subject: str) -> None:
    assert kind_of(family(subject=subject)) is MessageKind.AUTO_REPLY


def test_x_auto_response_suppress_alone_is_not_automatic() -> None:
    # Outlook sets it on some ordinary mail that a person writes.
    assert kind_of(family("X-Auto-Response-Suppress: All")) is MessageKind.DIRECT_EMAIL


def test_x_auto_response_suppress_with_out_of_office_wording_is_automatic() -> None:
    raw = family("X-Auto-Response-Suppress: All", subject="Jane Example is out of the office")
    assert kind_of(raw) is MessageKind.AUTO_REPLY


def test_out_of_office_hours_worry_is_direct_email() -> None:
    raw = family("X-Auto-Response-Suppress: All", subject="Out of office hours - worried about son")
    assert kind_of(raw) is MessageKind.DIRECT_EMAIL


def test_read_receipt_is_an_auto_reply() -> None:
    raw = family(
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="B"',
        subject="Read: Your safer custody contact",
        body="--B\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--B--\r\n",
    )
    assert kind_of(raw) is MessageKind.AUTO_REPLY


def test_out_of_office_reply_to_our_email_is_an_auto_reply_not_a_reply() -> None:
    raw = family("Auto-Submitted: auto-replied", f"In-Reply-To: <{OUR_ID}>")
    assert kind_of(raw) is MessageKind.AUTO_REPLY


# --- Bulk -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "List-Id: Prison news <news.lists.example.org>",
        "List-Unsubscribe: <mailto:leave@lists.example.org>",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
        "X-Spam-Flag: YES",
        "X-Spam-Status: Yes, score=12.1 required=5.0",
    ],
)
def test_list_and_spam_markers_make_bulk(header: str) -> None:
    assert kind_of(family(header)) is MessageKind.BULK


def test_spam_status_no_is_not_bulk() -> None:
    raw = family("X-Spam-Status: No, score=0.1", "X-Spam-Flag: NO")
    assert kind_of(raw) is MessageKind.DIRECT_EMAIL


def test_spam_flagged_reply_to_our_email_is_still_a_reply() -> None:
    raw = family("X-Spam-Flag: YES", f"In-Reply-To: <{OUR_ID}>")
    assert kind_of(raw) is MessageKind.REPLY


# --- Replies --------------------------------------------------------------------------


def test_in_reply_to_our_message_id_is_a_reply() -> None:
    result = recognise_bytes(family(f"In-Reply-To: <{OUR_ID}>"), CONFIG)
    assert result.kind is MessageKind.REPLY
    assert result.referenced_ids == (OUR_ID,)


def test_references_holding_our_message_id_is_a_reply() -> None:
    raw = family(f"References: <first@example.com>\r\n <{OUR_ID.upper()}> <x@example.com>")
    result = recognise_bytes(raw, CONFIG)
    assert result.kind is MessageKind.REPLY
    assert result.referenced_ids == ("first@example.com", OUR_ID.upper(), "x@example.com")


def test_subject_reference_is_a_reply() -> None:
    result = recognise_bytes(family(subject="Re: Your contact [SC-2026-00042]"), CONFIG)
    assert result.kind is MessageKind.REPLY
    assert result.our_reference == "SC-2026-00042"


def test_reference_without_brackets_is_not_ours() -> None:
    result = recognise_bytes(family(subject="About SC-2026-00042"), CONFIG)
    assert (result.kind, result.our_reference) == (MessageKind.DIRECT_EMAIL, None)


def test_reply_to_someone_elses_message_is_direct_email() -> None:
    assert kind_of(family("In-Reply-To: <abc@example.com>")) is MessageKind.DIRECT_EMAIL


def test_our_domain_without_mailbot_prefix_is_not_ours() -> None:
    raw = family("In-Reply-To: <staff.123@prison.example>")
    assert kind_of(raw) is MessageKind.DIRECT_EMAIL


# --- Direct email and malformed -------------------------------------------------------


def test_mail_from_our_own_address_is_direct_email_with_a_reason() -> None:
    raw = family().replace(
        b"Karen Sample <karen.sample@example.com>", b"safercustody.exampletown@prison.example"
    )
    result = recognise_bytes(raw, CONFIG)
    assert result.kind is MessageKind.DIRECT_EMAIL
    assert "from our own address" in result.reasons


def test_message_id_without_brackets_is_kept() -> None:
    raw = family().replace(b"<family-1@example.com>", b"N77056c0a550a010202b5c")
    assert recognise_bytes(raw, CONFIG).message_id == "N77056c0a550a010202b5c"


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \r\n\r\n", b"\x00\x01\x02 binary garbage without any header line", b"\r\n\r\nbody"],
    ids=["empty", "blank", "garbage", "body-only"],
)
def test_headerless_bytes_are_malformed(raw: bytes) -> None:
    assert kind_of(raw) is MessageKind.MALFORMED


def test_no_from_and_no_body_is_malformed() -> None:
    assert kind_of(b"Subject: hello\r\nDate: today\r\n\r\n") is MessageKind.MALFORMED


def test_no_from_but_a_body_is_direct_email() -> None:
    assert kind_of(build("Subject: help", "To: a@b.example")) is MessageKind.DIRECT_EMAIL


def test_empty_message_object_is_malformed() -> None:
    assert recognise(EmailMessage(), CONFIG).kind is MessageKind.MALFORMED


# --- Never raising --------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Message-ID: <",
        "To: <",
        "From: <",
        "From: \\@[ ",
        "Message-ID: <é@[",
        "Subject: =?x-unknown-charset?q?hello?=",
        "Subject: =?utf-8?b?!!!not-base64?=",
        "Content-Type: multipart/mixed",
        'Content-Type: text/plain; charset="no-such-charset"',
        "Content-Type: /",
        "Authentication-Results: ;;;",
        "References: <<<>>>",
        "In-Reply-To:",
    ],
)
def test_header_the_standard_parser_chokes_on_does_not_raise(header: str) -> None:
    raw = family(header)
    assert isinstance(recognise_bytes(raw, CONFIG), Recognition)
    assert isinstance(recognise(read_message(raw), CONFIG), Recognition)


def test_eight_bit_headers_come_back_as_clean_text() -> None:
    raw = family().replace(b"Worried about my son", b"Inqui\xe9te pour mon fils \xff\x00")
    result = recognise_bytes(raw.replace(b"family-1@", b"f\xc3\xa9\x00-1@"), CONFIG)
    assert result.message_id == "fé -1@example.com"
    _assert_clean(result)


def test_deeply_nested_multipart_does_not_raise() -> None:
    depth = 2000
    opening = "".join(
        f'--B{i}\r\nContent-Type: multipart/mixed; boundary="B{i + 1}"\r\n\r\n'
        for i in range(depth)
    )
    raw = build(
        "From: karen.sample@example.com",
        'Content-Type: multipart/mixed; boundary="B0"',
        body=opening + "innermost\r\n",
    )
    assert isinstance(recognise_bytes(raw, CONFIG), Recognition)


def test_message_built_in_code_is_recognised() -> None:
    msg = EmailMessage()
    msg["From"] = "Karen Sample <karen.sample@example.com>"
    msg["Subject"] = "Re: Your contact [SC-2026-00042]"
    msg.set_content("Thank you.")
    assert recognise(msg, CONFIG).kind is MessageKind.REPLY


def _twenty_megabyte_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Karen Sample <karen.sample@example.com>"
    msg["To"] = "safercustody.exampletown@prison.example"
    msg["Subject"] = "Photos of his letters"
    msg["Message-ID"] = "<big-1@example.com>"
    msg.set_content("Please see the attached scans.")
    msg.add_attachment(
        os.urandom(20 * 1024 * 1024), maintype="application", subtype="pdf", filename="a.pdf"
    )
    return msg


def test_twenty_megabyte_attachment_does_not_raise_and_is_quick() -> None:
    msg = _twenty_megabyte_message()
    raw = msg.as_bytes()
    started = time.monotonic()
    by_bytes = recognise_bytes(raw, CONFIG)
    by_message = recognise(msg, CONFIG)
    assert by_bytes.kind is by_message.kind is MessageKind.DIRECT_EMAIL
    assert time.monotonic() - started < 30


def test_twenty_megabyte_bounce_does_not_raise() -> None:
    msg = _twenty_megabyte_message()
    msg.replace_header("From", "MAILER-DAEMON@mx.example.net")
    msg.replace_header("Subject", "Undelivered Mail Returned to Sender")
    assert recognise(msg, CONFIG).kind is MessageKind.BOUNCE


# --- Fuzzing --------------------------------------------------------------------------


def _seeds() -> list[bytes]:
    seeds = [
        family(f"In-Reply-To: <{OUR_ID}>", "Auto-Submitted: auto-replied"),
        portal(TRUSTED_PASS),
        dsn(f"Message-ID: <{OUR_ID}>"),
    ]
    for directory in (SAMPLES, BOUNCES):
        seeds.extend(p.read_bytes() for p in sorted(directory.glob("*.eml"))[:12])
    return seeds


SEEDS = _seeds()
INSERTS = [
    b"\r",
    b"\n",
    b"\x00",
    b"\r\n",
    b"\n\n",
    b"\r\n\r\n",
    b"\r\n ",
    b":",
    b"<",
    b">",
    b"=?utf-8?b?",
    b"?=",
    b"\xff\xfe",
    b"\xc3",
    b'"',
    b"\\",
    b";",
    b"--",
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if not raw:
            break
        position = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate"]))
        if operation == "flip":
            raw[position] = draw(st.integers(min_value=0, max_value=255))
        elif operation == "truncate":
            del raw[position:]
        elif operation == "insert":
            raw[position:position] = draw(st.sampled_from(INSERTS))
        else:
            header_block = bytes(raw).split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
            lines = header_block.splitlines(keepends=True)
            if not lines:
                continue
            line = lines[draw(st.integers(min_value=0, max_value=len(lines) - 1))]
            raw[0:0] = line if line.endswith(b"\n") else line + b"\r\n"
    return bytes(raw)


def _assert_clean(result: Recognition) -> None:
    """Every text the store will write is valid UTF-8 without NUL (PostgreSQL refuses it)."""
    texts = [*result.reasons, *result.referenced_ids, *result.bounced_recipients]
    texts += [
        t
        for t in (
            result.message_id,
            result.sender,
            result.our_reference,
            result.original_message_id,
        )
        if t is not None
    ]
    for text in texts:
        assert isinstance(text, str)
        text.encode("utf-8")
        assert "\x00" not in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_mutated_messages_never_raise(raw: bytes) -> None:
    result = recognise_bytes(raw, CONFIG)
    assert isinstance(result, Recognition)
    assert result.kind in MessageKind
    _assert_clean(result)
    assert isinstance(recognise(read_message(raw), CONFIG), Recognition)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = recognise_bytes(raw, CONFIG)
    assert isinstance(result, Recognition)
    _assert_clean(result)


def test_family_forwarding_a_bounce_as_an_attachment_is_direct_email() -> None:
    bounce = dsn(f"Message-ID: <{OUR_ID}>").decode()
    raw = build(
        "From: Karen Sample <karen.sample@example.com>",
        "Subject: FW: Undelivered Mail Returned to Sender",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="OUTER"',
        body=(
            "--OUTER\r\nContent-Type: text/plain\r\n\r\nMy email to the wing bounced, see below."
            f"\r\n--OUTER\r\nContent-Type: message/rfc822\r\n\r\n{bounce}\r\n--OUTER--\r\n"
        ),
    )
    assert kind_of(raw) is MessageKind.DIRECT_EMAIL


def test_a_bounce_detector_that_fails_is_one_log_line_and_not_a_bounce(caplog, capfd) -> None:
    # flufl.bounce's Sina detector calls .lower() on the From header, which compat32
    # hands over as a Header object when the address has a raw 8-bit byte in it.
    raw = (
        b"From: Jane Example <jane.example@example.c\x90m>\r\n"
        b"To: safercustody.exampletown@prison.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <letter-1@example.com>\r\n\r\n"
        b"My letter to him came back. Is he all right?\r\n"
    )
    with caplog.at_level(logging.DEBUG):
        result = recognise_bytes(raw, CONFIG)
    assert result.kind is MessageKind.DIRECT_EMAIL
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.getMessage()) for r in said] == [
        ("mailbot.ingest.recognise", "bounce_detector_failed")]
    assert said[0].fields == {"detector": "sina", "error": "AttributeError",
                              "treated_as": "no failed recipients"}
    assert all(r.exc_info is None for r in caplog.records)  # flufl's traceback is not logged
    assert "Traceback" not in capfd.readouterr().err
