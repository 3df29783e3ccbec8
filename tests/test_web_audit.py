"""Who the audit trail names: the console records the member of staff signed in; the
command line's `--by NAME`, which anyone at the shell can fill with any name, is recorded
as typed there ("NAME (--by on the command line)"), so the two never read alike, and the
audit page shows each as recorded."""

from __future__ import annotations

import re

from sqlalchemy import select
from starlette.testclient import TestClient

from mailbot import config as config_module
from mailbot import db
from mailbot.casework.audit import TYPED, record_event
from mailbot.cli import main
from mailbot.db.models import AuditEvent
from mailbot.devtools.devservers import config_text
from mailbot.web import accounts
from mailbot.web.app import create_app

PASSWORD = "correct horse battery"


def test_the_console_names_the_signed_in_officer_and_the_cli_says_by_was_typed(tmp_path):
    password = tmp_path / "imap-password"
    password.write_text("unused\n")
    path = tmp_path / "mailbot.toml"
    path.write_text(config_text(imap_port=1, username="u", password_file=password,
                                database_url=f"sqlite:///{tmp_path / 'mailbot.sqlite3'}",
                                state_dir=tmp_path, smtp_port=1,
                                extra="[web]\nbehind_tls = false\n"))
    config = config_module.load(path)
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    with sessions() as session:
        accounts.add(session, "Officer Smith", "manager", PASSWORD, by="test")
        session.commit()

    # From the command line, with the officer's name typed after --by.
    assert main(["--config", str(path), "consent", "grant", "--prisoner", "A1234BC",
                 "--contact", "jane@example.com", "--scope", "wellbeing",
                 "--by", "Officer Smith"]) == 0
    # From the console, signed in as that officer.
    browser = TestClient(create_app(config, sessions, session_secret="s" * 40),
                         follow_redirects=False)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"',
                     browser.get("/sign-in").text).group(1)
    assert browser.post("/sign-in", data={"name": "Officer Smith", "password": PASSWORD,
                                          "csrf_token": csrf}).status_code == 303
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/consent").text).group(1)
    assert browser.post("/consent/grant", data={
        "prisoner": "A1234BC", "contact": "jane@example.com", "scope": "full",
        "csrf_token": csrf}).status_code == 303
    # The command line's marking ended with its verb: nothing else in this process is.
    with sessions() as session:
        record_event(session, actor="Officer Smith", action="test_event")
        session.commit()
        granted = [(e.actor, e.detail.get("scope")) for e in session.execute(
            select(AuditEvent).where(AuditEvent.action == "consent_granted")
            .order_by(AuditEvent.id)).scalars()]
        later = session.execute(select(AuditEvent.actor).where(
            AuditEvent.action == "test_event")).scalar_one()
    assert granted == [(f"Officer Smith{TYPED}", "wellbeing"), ("Officer Smith", "full")]
    assert later == "Officer Smith"
    # The consent register keeps the name itself for both; the audit page shows how.
    audit = browser.get("/audit").text
    assert "Officer Smith (--by on the command line)" in audit
    engine.dispose()


def test_every_by_option_on_the_command_line_marks_what_it_records():
    """A verb given --by another way than by_option would record the typed name bare."""
    import click

    from mailbot.cli import cli
    from mailbot.cli.context import _typed_by

    found = []

    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            if param.name == "by":
                found.append(path)
                assert param.callback is _typed_by, f"{path} --by is not by_option()"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(cli, "mailbot")
    assert "mailbot drafts approve" in found and "mailbot consent grant" in found
    assert len(found) >= 10
