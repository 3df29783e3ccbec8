"""Replies are triaged on what the family wrote now, not on our words quoted back."""

from __future__ import annotations

from email.message import EmailMessage

from mailbot.config import from_dict
from mailbot.ingest.examine import examine
from mailbot.parsers.quoting import new_text
from mailbot.replies.policy import preview
from mailbot.triage import load_rules

RULES = load_rules()
CONFIG = from_dict(
    {
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {"host": "localhost", "username": "u", "password_env": "UNUSED"},
        "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
    }
)


def test_quoted_lines_and_reply_separators_are_not_new_text():
    assert new_text("Thanks\n> quoted\n> more\nBye") == "Thanks\nBye"
    assert new_text("Thanks\n\nOn Mon, 16 Nov 2026 at 10:00, Team wrote:\nold text") == "Thanks"
    assert new_text("Thanks\n-----Original Message-----\nold") == "Thanks"
    outlook = "Thanks\n\nFrom: Safer Custody <sc@prison.example>\nSent: Monday\nTo: me\nold"
    assert new_text(outlook) == "Thanks"


def test_text_without_quotes_is_unchanged():
    text = "From: my heart, he is not ok\nPlease help"
    assert new_text(text) == text


def test_bottom_posted_words_are_kept():
    assert new_text("> your email\nHe says he wants to die tonight") == (
        "He says he wants to die tonight"
    )


def reply_quoting(ours: str, new: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sam <sam.sample@example.net>"
    msg["To"] = "safercustody@prison.example"
    msg["Subject"] = "Re: Your enquiry to the safer custody team [SC-2026-00002]"
    msg["Message-ID"] = "<reply@example.net>"
    msg.set_content(new + "\n\n> " + ours.replace("\n", "\n> ") + "\n")
    return msg.as_bytes()


def test_a_thank_you_quoting_our_reply_raises_nothing_from_our_words():
    ours = preview("signposting").text
    examined = examine(reply_quoting(ours, "Thank you, that is helpful."), CONFIG, rules=RULES)
    assert examined.kind == "reply"
    assert "danger" not in " ".join(examined.triage.reasons)
    assert examined.triage.urgency in ("routine", "not_safer_custody")
    assert "danger" in examined.contact.concern_text  # staff still see everything


def test_a_reply_with_a_new_threat_to_life_is_immediate():
    ours = preview("ack_no_consent").text
    examined = examine(reply_quoting(ours, "He rang, he has a ligature and says tonight."),
                       CONFIG, rules=RULES)
    assert examined.triage.urgency == "immediate"


def test_contact_us_again_is_not_drug_use():
    from mailbot.triage import triage

    assert "drugs_alcohol" not in triage("please contact us again", rules=RULES).categories
    assert "drugs_alcohol" in triage("he is using again", rules=RULES).categories
