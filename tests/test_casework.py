"""Staff record what they did for a concern; only they close it; all of it is audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.cli import main
from mailbot.db.models import AuditEvent, Disposition
from mailbot.devtools.devservers import config_text
from mailbot.ingest.examine import Examined
from mailbot.ingest.store import record
from mailbot.parsers.contact import ParsedContact, Source


@pytest.fixture
def cli(tmp_path, capsys):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    path = tmp_path / "mailbot.toml"
    path.write_text(config_text(imap_port=9, username="u", password_file=tmp_path / "pw",
                                database_url=url, state_dir=tmp_path))
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        record(session, Examined(kind="portal_form", verified=True,
                                 disposition=Disposition.LOGGED, reason="test",
                                 contact=ParsedContact(source=Source.PORTAL_FORM)),
               raw=b"x", sha256="0" * 64, size=1, folder="INBOX", uidvalidity=1, uid=1,
               received_at=datetime(2026, 11, 20, 10, tzinfo=UTC))
        session.commit()

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--config", str(path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    run.engine = engine  # type: ignore[attr-defined]
    return run


REF = "SC-2026-00001"


def test_actions_are_recorded_shown_and_audited(cli):
    assert cli("concerns", "action", REF, "--kind", "welfare_check", "--by", "Officer Smith",
               "--note", "seen on the wing", "--outcome", "safe")[0] == 0
    assert cli("concerns", "action", REF, "--kind", "referral", "--department",
               "mental_health", "--by", "Officer Smith",
               "--when", "2026-11-20T12:00:00+00:00")[0] == 0
    code, out, _ = cli("concerns", "show", REF)
    assert code == 0
    shown = json.loads(out)
    assert [(a["kind"], a["department"]) for a in shown["actions"]] == [
        ("welfare_check", None), ("referral", "mental_health")]
    assert shown["actions"][1]["at"].startswith("2026-11-20T12:00")
    with db.session_factory(cli.engine)() as session:
        actions = [e.action for e in session.execute(select(AuditEvent)).scalars()]
    assert actions == ["action_welfare_check", "action_referral"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "tea_break"], "--kind must be one of"),
        (["--kind", "referral"], "needs --department"),
        (["--kind", "welfare_check", "--department", "healthcare"], "--department goes only"),
        (["--kind", "welfare_check", "--when", "yesterday"], "--when"),
    ],
)
def test_bad_actions_are_refused_with_a_reason(cli, args, message):
    code, _, err = cli("concerns", "action", REF, "--by", "Officer Smith", *args)
    assert code != 0 and message in err


def test_only_staff_close_a_concern_and_only_once(cli):
    code, out, _ = cli("concerns", "close", REF, "--by", "Officer Smith",
                       "--outcome", "family reassured; ACCT closed")
    assert code == 0
    shown = json.loads(cli("concerns", "show", REF)[1])
    assert shown["status"] == "closed" and shown["closed_by"] == "Officer Smith"
    assert shown["outcome"] == "family reassured; ACCT closed"
    code, _, err = cli("concerns", "close", REF, "--by", "Officer Smith", "--outcome", "again")
    assert code != 0 and "already closed" in err
    assert cli("concerns", "show", "SC-2026-99999")[0] != 0
