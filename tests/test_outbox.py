"""The outbox's pure helpers: Message-IDs and the one-address rule."""

from __future__ import annotations

import os
import re

import pytest

from mailbot.replies.outbox import UnsafeRecipient, new_message_id, single_address


def test_message_ids_are_unique_well_formed_and_carry_our_reference(offline_config):
    ids = [new_message_id(offline_config, "SC-2026-00042") for _ in range(2_000)]
    assert len(set(ids)) == len(ids)  # across several refills of the random buffer
    assert all(
        re.fullmatch(r"<mailbot\.SC-2026-00042\.[0-9a-f]{32}@prison\.example>", i) for i in ids
    )


def test_a_forked_process_never_repeats_the_parents_message_ids(offline_config):
    new_message_id(offline_config, None)  # the parent has a buffer part used
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, new_message_id(offline_config, None).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    from_child = os.read(read, 200).decode()
    os.close(read)
    assert from_child != new_message_id(offline_config, None)


@pytest.mark.parametrize("value", [
    "a@example.org\r\nBcc: b@example.org", "a@example.org, b@example.org",
    "Name <a@example.org>", "", "no-at-sign",
])
def test_anything_but_one_plain_address_is_refused(value):
    with pytest.raises(UnsafeRecipient):
        single_address(value)
