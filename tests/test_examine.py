"""The pure heart of the pipeline: whatever the bytes, a disposition and a reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.config import from_dict
from mailbot.db.models import Disposition
from mailbot.ingest.examine import examine
from mailbot.reports.export import to_csv
from mailbot.triage import load_rules
from tests.conftest import sample_bytes
from tests.forms import portal_form

RULES = load_rules()
OFFLINE = from_dict(
    {
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {"host": "localhost", "username": "u", "password_env": "UNUSED"},
        "smtp": {"host": "localhost", "from_address": "safercustody@prison.example"},
    }
)


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"\x00\x01\x02", b"just some words\r\n"])
def test_unreadable_bytes_are_quarantined_with_a_reason(raw, offline_config):
    examined = examine(raw, offline_config, rules=RULES)
    assert examined.disposition == Disposition.QUARANTINED
    assert examined.reason
    assert examined.contact is None


def test_a_verified_safety_form_is_logged_and_triaged(offline_config):
    examined = examine(sample_bytes("01-portal-safety-multipart.eml"), offline_config,
                       rules=RULES)
    assert examined.disposition == Disposition.LOGGED
    assert examined.verified and examined.triage is not None
    assert examined.triage.is_safer_custody
    assert examined.reply_to == "jane.example@example.com"


def test_automatic_mail_is_ignored_not_logged(offline_config):
    examined = examine(sample_bytes("06-out-of-office.eml"), offline_config, rules=RULES)
    assert examined.disposition == Disposition.IGNORED
    assert examined.contact is None
    assert examined.reason.startswith("auto_reply")


def test_a_form_that_names_another_prison_is_flagged(offline_config):
    examined = examine(portal_form(prison="HMP Elsewhere"), offline_config, rules=RULES)
    assert "wrong_establishment" in examined.contact.flags


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=3000))
def test_examine_never_raises(raw):
    examined = examine(raw, OFFLINE, rules=RULES)
    assert examined.disposition in tuple(Disposition)


def test_csv_export_is_flat_and_formula_safe():
    entry = {
        "reference": "SC-2026-00001",
        "submitter": {"name": "=HYPERLINK(\"http://x\")", "email": "a@b.c"},
        "flags": ["needs_review", "unverified_sender"],
        "replies": [],
    }
    text = to_csv([entry])
    header, row = text.splitlines()
    assert header == "reference,submitter.name,submitter.email,flags,replies"
    assert "'=HYPERLINK" in row
    assert "needs_review; unverified_sender" in row
