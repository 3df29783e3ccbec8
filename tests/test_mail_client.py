"""The Drafts folder under crashes, with real Dovecot: a process killed at each step of
placing a draft (searched, appended, committed), then run again, leaves each draft in
Drafts exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.db.models import Draft
from mailbot.devtools.failpoints import DRAFT_APPENDED, DRAFT_PLACED, DRAFT_SEARCHED
from tests.forms import portal_form

pytestmark = pytest.mark.servers

FAMILIES = ("ann.one@example.com", "bob.two@example.org", "cat.three@example.net")


def run_once(config_path: str, failpoint: str | None = None) -> int:
    env = dict(os.environ)
    env.pop("MAILBOT_FAILPOINT", None)
    if failpoint:
        env["MAILBOT_FAILPOINT"] = failpoint
    done = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", config_path, "run", "--once"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode in (0, -9), (done.returncode, done.stderr[-3000:])
    return done.returncode


def drafts_folder_message_ids(dovecot) -> list[str]:  # type: ignore[no-untyped-def]
    with dovecot.mailbox() as box:
        box.folder.set("Drafts")
        return [m.headers["message-id"][0].strip() for m in box.fetch(mark_seen=False)]


def draft_rows(config) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        rows = [(d.message_id, d.mailbox_copy)
                for d in session.execute(select(Draft).order_by(Draft.id)).scalars()]
    engine.dispose()
    return rows


@pytest.mark.parametrize("where", [DRAFT_SEARCHED, DRAFT_APPENDED, DRAFT_PLACED])
def test_killed_at_each_step_of_placing_a_draft_no_draft_is_placed_twice(
    dovecot, smtp_sink, make_config, database_url, where
):
    for address in FAMILIES:
        dovecot.append(portal_form(email=address, prisoner_number="A1234BC",
                                   text="He says he is being bullied and hurting himself."))
    path, config = make_config(smtp_port=smtp_sink.port, database_url=database_url)

    # Killed at that step of the first draft; a step that moves on (appended, placed) is
    # killed again at the next draft, run after run, until a run gets to the end.
    assert run_once(str(path), where) == -9
    runs = 1
    while where != DRAFT_SEARCHED and run_once(str(path), where) == -9:
        runs += 1
        assert runs <= len(FAMILIES) + 1
    if where != DRAFT_SEARCHED:
        assert runs == len(FAMILIES)  # each killed run placed one draft
    assert run_once(str(path)) == 0
    assert run_once(str(path)) == 0

    rows = draft_rows(config)
    assert len(rows) == len(FAMILIES)
    assert {copy for _, copy in rows} == {"placed"}
    in_folder = Counter(drafts_folder_message_ids(dovecot))
    assert in_folder == Counter(message_id for message_id, _ in rows)  # 0 duplicates
