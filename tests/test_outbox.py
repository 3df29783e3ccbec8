"""The outbox's pure helpers: Message-IDs and the one-address rule."""

from __future__ import annotations

import re

import pytest

from mailbot.replies.outbox import UnsafeRecipient, new_message_id, single_address


def test_message_ids_are_unique_well_formed_and_carry_our_reference(offline_config):
    ids = [new_message_id(offline_config, "SC-2026-00042") for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    assert all(
        re.fullmatch(r"<mailbot\.SC-2026-00042\.[0-9a-f]{32}@prison\.example>", i) for i in ids
    )


@pytest.mark.parametrize("value", [
    "a@example.org\r\nBcc: b@example.org", "a@example.org, b@example.org",
    "Name <a@example.org>", "", "no-at-sign",
])
def test_anything_but_one_plain_address_is_refused(value):
    with pytest.raises(UnsafeRecipient):
        single_address(value)
