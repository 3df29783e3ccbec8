"""`mailbot mailbox check` against Dovecot whose special-use folders have Exchange's and
Gmail's names: it signs in to IMAP and SMTP, says which folder the server means by Sent
and Drafts, and sends nothing."""

from __future__ import annotations

import pytest

from mailbot.cli import main
from mailbot.devtools.devservers import Dovecot, dovecot_available, write_config
from tests.test_signin import MAILBOX, SECRET, write_oauth2_config

pytestmark = pytest.mark.servers

EXCHANGE = {"Drafts": "\\Drafts", "Sent Items": "\\Sent", "Deleted Items": "\\Trash",
            "Junk Email": "\\Junk"}
GMAIL = {"[Gmail]/Drafts": "\\Drafts", "[Gmail]/Sent Mail": "\\Sent",
         "[Gmail]/Trash": "\\Trash", "[Gmail]/Spam": "\\Junk"}


@pytest.fixture
def server_named_like():
    if not dovecot_available():
        pytest.skip("Dovecot is not installed: run ./scripts/test, which installs it")
    started: list[Dovecot] = []

    def start(folders: dict[str, str]) -> Dovecot:
        started.append(Dovecot.start(special_folders=folders))
        return started[-1]

    yield start
    for server in started:
        server.destroy()


class ReadOnlySentItems(Dovecot):
    """Exchange's folders, with Sent Items only readable by the account (Dovecot's ACL
    plugin), as when a shared mailbox's permissions are read-only."""

    def _write_config(self) -> None:
        super()._write_config()
        acl = self.root / "dovecot-acl"
        acl.write_text(f'"Sent Items" user={self.username} lr\n')
        self.config_path.write_text(
            "mail_plugins = acl\n" + self.config_path.read_text()
            + "protocol imap {\n  mail_plugins = $mail_plugins imap_acl\n}\n"
            + f"plugin {{\n  acl = vfile:{acl}\n}}\n"
        )


def check(path, capsys) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    code = main(["--config", str(path), "mailbox", "check"])
    return code, capsys.readouterr().out.splitlines()


def test_exchanges_sent_items_is_found_and_named_in_the_fix(
    server_named_like, smtp_sink, tmp_path, capsys
):
    exchange = server_named_like(EXCHANGE)
    path = write_config(tmp_path, exchange, smtp_sink.port)
    code, out = check(path, capsys)
    assert code == 1
    assert out[0] == (f"mailbox: signed in to 127.0.0.1:{exchange.port} as "
                      f"{exchange.username} (password)")
    assert ('PROBLEM: sent folder: the server\'s sent folder (\\Sent) is "Sent Items": '
            'set [mailbox] sent_folder = "Sent Items"') in out
    assert any(line.split()[:2] == ["drafts", '"Drafts"'] and "writable" in line
               and "the server's \\Drafts" in line for line in out)
    assert any(line.split()[0] == "trash" and '"Deleted Items"' in line for line in out)
    assert any(line.split()[0] == "processed" and "mailbot creates it" in line for line in out)
    assert out[-2:] == ["PROBLEM: sent folder: the server's sent folder (\\Sent) is "
                        "\"Sent Items\": set [mailbox] sent_folder = \"Sent Items\"",
                        "mailbox check: 1 problem(s)"]
    assert exchange.folder_counts("Processed") == {"Processed": 0}  # nothing created
    assert smtp_sink.messages == []


def test_exchange_configured_with_its_own_names_is_ready(
    server_named_like, smtp_sink, tmp_path, capsys
):
    exchange = server_named_like(EXCHANGE)
    path = write_config(tmp_path, exchange, smtp_sink.port,
                        mailbox_extra='sent_folder = "Sent Items"')
    code, out = check(path, capsys)
    assert code == 0, out
    assert out[-2:] == ["nothing was sent", "mailbox check: ready"]
    assert any(line.split()[:3] == ["sent", '"Sent', 'Items"'] and "exists, writable" in line
               for line in out)


def test_gmails_folders_are_named_in_the_fix(server_named_like, smtp_sink, tmp_path, capsys):
    gmail = server_named_like(GMAIL)
    path = write_config(tmp_path, gmail, smtp_sink.port)
    code, out = check(path, capsys)
    assert code == 1
    problems = [line for line in out if line.startswith("PROBLEM: ")]
    assert problems == [
        'PROBLEM: sent folder: the server\'s sent folder (\\Sent) is "[Gmail]/Sent Mail": '
        'set [mailbox] sent_folder = "[Gmail]/Sent Mail"',
        'PROBLEM: drafts folder: the server\'s drafts folder (\\Drafts) is "[Gmail]/Drafts": '
        'set [drafts] drafts_folder = "[Gmail]/Drafts"',
    ]


def test_check_signs_in_to_both_with_oauth2_and_sends_nothing(
    provider, oauth2_dovecot, oauth2_smtp, tmp_path, capsys
):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    path = write_oauth2_config(tmp_path, provider, oauth2_dovecot.port, oauth2_smtp.port)
    code, out = check(path, capsys)
    assert code == 0, out
    assert out[0] == (f"mailbox: signed in to 127.0.0.1:{oauth2_dovecot.port} as {MAILBOX} "
                      "(OAuth2, generic)")
    assert out[1] == (f"mail server: signed in to 127.0.0.1:{oauth2_smtp.port} as {MAILBOX} "
                      "(OAuth2, generic)")
    assert oauth2_smtp.messages == []
    assert len(provider.tokens_for("mailbot")) == 1  # one token for IMAP and SMTP


def test_check_with_a_refused_sign_in_exits_3_in_one_line(
    provider, oauth2_dovecot, oauth2_smtp, tmp_path, capsys
):
    provider.add_app("mailbot", secret=SECRET, mailbox=None)  # no mailbox permission
    path = write_oauth2_config(tmp_path, provider, oauth2_dovecot.port, oauth2_smtp.port)
    assert main(["--config", str(path), "mailbox", "check"]) == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mailbot:")]
    assert len(err) == 1 and "refused the OAuth2 access token for" in err[0]


def test_status_says_when_drafts_are_taken_but_nothing_shows_up_in_sent(
    dovecot, smtp_sink, make_config
):
    """Staff sent mailbot's draft from Outlook (it is gone from Drafts), and Exchange filed
    the sent copy in their own Sent Items: mailbot never sees the response."""
    from datetime import timedelta

    from mailbot import db
    from mailbot.db.models import Draft, utcnow
    from mailbot.ingest.pipeline import Pipeline
    from mailbot.service import health
    from tests.conftest import sample_bytes

    _, config = make_config(smtp_port=smtp_sink.port)
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
    Pipeline(config, sessions).run_once()
    assert dovecot.folder_counts("Drafts") == {"Drafts": 1}
    with sessions() as session:
        for draft in session.query(Draft):
            draft.created_at = utcnow() - timedelta(days=3)
        session.commit()

    def problems() -> list[str]:
        return [p for p in health.status(config, sessions).problems if "draft(s)" in p]

    assert problems() == []  # still in Drafts: nobody has taken it
    with dovecot.mailbox() as box:
        box.folder.set("Drafts")
        box.delete(box.uids("ALL"))  # Outlook sent it, from the officer's own mailbox
    assert problems() == [
        "1 draft(s) mailbot placed in 'Drafts' over 2 days ago are gone from it, yet nothing "
        "staff sent has been found in 'Sent' since: if staff send as the shared mailbox from "
        "Outlook, have Exchange keep a copy there (Set-Mailbox -MessageCopyForSentAsEnabled "
        "$true, docs/microsoft-365.md) or approve with `mailbot drafts approve`"]
    engine.dispose()


def test_a_folder_the_server_will_not_create_is_said_in_one_line_with_exit_3(
    dovecot, smtp_sink, make_config, capsys
):
    path, _ = make_config(smtp_port=smtp_sink.port, mailbox_extra='processed_folder = "~Done"')
    assert main(["--config", str(path), "run", "--once"]) == 3
    said = [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("mailbot: ")]
    assert len(said) == 1, said
    assert said[0].startswith("mailbot: the mailbox will not let mailbot create the folder "
                              "'~Done' ([CANNOT] Invalid mailbox name: Begins with '~'")
    assert said[0].endswith("; create it by hand, or name a folder that exists "
                            "(`mailbot mailbox check` lists them)")


def test_a_folder_mailbot_may_not_write_is_a_problem(smtp_sink, tmp_path, capsys):
    if not dovecot_available():
        pytest.skip("Dovecot is not installed: run ./scripts/test, which installs it")
    exchange = ReadOnlySentItems.start(special_folders=EXCHANGE)
    try:
        path = write_config(tmp_path, exchange, smtp_sink.port,
                            mailbox_extra='sent_folder = "Sent Items"')
        code, out = check(path, capsys)
    finally:
        exchange.destroy()
    assert code == 1
    assert [line for line in out if line.startswith("PROBLEM: ")] == [
        "PROBLEM: sent folder: mailbot must write here: give the mailbox's account write "
        "access to it"]
    assert any('"Sent Items"' in line and "exists, READ-ONLY" in line for line in out)
