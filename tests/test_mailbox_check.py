"""The folders as the server names them, against Dovecot whose special-use folders have
Exchange's and Gmail's names: `mailbot mailbox check` signs in to IMAP and SMTP, creates
the folders mailbot makes, says which folder the server means by Sent and Drafts, and
sends nothing; `run --once` with no folder named in the configuration places drafts in
the server's Drafts, files the copies of what it sends in the server's Sent and reads
staff responses there; a folder named in the configuration wins."""

from __future__ import annotations

import json
from email.message import EmailMessage

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


def line_for(out: list[str], use: str) -> str:
    """The survey's line for one use of a folder (`sent`, `drafts`...), unindented."""
    [line] = [line.strip() for line in out if line.startswith(f"  {use} ")]
    return line


def test_exchanges_folders_are_found_by_special_use_when_not_configured(
    server_named_like, smtp_sink, tmp_path, capsys
):
    exchange = server_named_like(EXCHANGE)
    path = write_config(tmp_path, exchange, smtp_sink.port)
    code, out = check(path, capsys)
    assert code == 0, out
    assert out[0] == (f"mailbox: signed in to 127.0.0.1:{exchange.port} as "
                      f"{exchange.username} (password)")
    assert line_for(out, "sent") == (
        'sent        "Sent Items"             exists, writable; the server\'s \\Sent, found '
        "by SPECIAL-USE ([mailbox] sent_folder not set)")
    assert line_for(out, "drafts") == (
        'drafts      "Drafts"                 exists, writable; the server\'s \\Drafts, found '
        "by SPECIAL-USE ([drafts] drafts_folder not set)")
    assert '"Deleted Items"' in line_for(out, "trash")
    assert '"Junk Email"' in line_for(out, "junk")
    # The folders mailbot makes are made now, so a refusal shows up here, not on day one.
    for use in ("processed", "quarantine", "alerts"):
        assert line_for(out, use).endswith("exists, writable; created by this check")
    assert out[-2:] == ["nothing was sent", "mailbox check: ready"]
    with exchange.mailbox() as box:
        names = {folder.name for folder in box.folder.list()}
    assert "Sent" not in names  # no folder of mailbot's own beside Exchange's
    assert smtp_sink.messages == []


def test_a_configured_name_wins_but_one_not_the_servers_own_is_a_problem(
    server_named_like, smtp_sink, tmp_path, capsys
):
    exchange = server_named_like(EXCHANGE)
    path = write_config(tmp_path, exchange, smtp_sink.port, mailbox_extra='sent_folder = "Sent"')
    code, out = check(path, capsys)
    assert code == 1
    problem = ('the server\'s sent folder (\\Sent) is "Sent Items", not the configured '
               '"Sent": leave [mailbox] sent_folder out to use it (or set [mailbox] '
               'sent_folder = "Sent Items")')
    assert line_for(out, "sent").startswith('sent        "Sent"')
    assert out[-2:] == [f"PROBLEM: sent folder: {problem}", "mailbox check: 1 problem(s)"]


def test_exchange_configured_with_its_own_names_is_ready(
    server_named_like, smtp_sink, tmp_path, capsys
):
    exchange = server_named_like(EXCHANGE)
    path = write_config(tmp_path, exchange, smtp_sink.port,
                        mailbox_extra='sent_folder = "Sent Items"')
    code, out = check(path, capsys)
    assert code == 0, out
    assert out[-2:] == ["nothing was sent", "mailbox check: ready"]
    assert line_for(out, "sent") == (
        'sent        "Sent Items"             exists, writable; the server\'s \\Sent')


def test_gmails_folders_are_found_by_special_use_when_not_configured(
    server_named_like, smtp_sink, tmp_path, capsys
):
    gmail = server_named_like(GMAIL)
    path = write_config(tmp_path, gmail, smtp_sink.port)
    code, out = check(path, capsys)
    assert code == 0, out
    assert '"[Gmail]/Sent Mail"' in line_for(out, "sent")
    assert '"[Gmail]/Drafts"' in line_for(out, "drafts")
    assert '"[Gmail]/Spam"' in line_for(out, "junk")
    with gmail.mailbox() as box:
        names = {folder.name for folder in box.folder.list()}
    assert not names & {"Sent", "Drafts"}


def test_a_server_that_flags_no_sent_or_drafts_gets_the_plain_names(
    server_named_like, smtp_sink, tmp_path, capsys
):
    server = server_named_like({"Archive": "\\Archive"})
    path = write_config(tmp_path, server, smtp_sink.port)
    code, out = check(path, capsys)
    assert code == 0, out
    assert line_for(out, "sent").startswith('sent        "Sent"                   exists, '
                                            "writable; created by this check")
    assert line_for(out, "junk") == "junk        (none)                   missing; the server " \
                                    "flags no folder \\Junk"


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


@pytest.mark.parametrize("verb", [["run", "--once"], ["mailbox", "check"]])
def test_a_folder_the_server_will_not_create_is_said_in_one_line_with_exit_3(
    dovecot, smtp_sink, make_config, capsys, verb
):
    path, _ = make_config(smtp_port=smtp_sink.port, mailbox_extra='processed_folder = "~Done"')
    assert main(["--config", str(path), *verb]) == 3
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
        path = write_config(tmp_path, exchange, smtp_sink.port)  # Sent Items found by flag
        code, out = check(path, capsys)
    finally:
        exchange.destroy()
    assert code == 1
    assert [line for line in out if line.startswith("PROBLEM: ")] == [
        "PROBLEM: sent folder: mailbot must write here: give the mailbox's account write "
        "access to it"]
    assert any('"Sent Items"' in line and "exists, READ-ONLY" in line for line in out)


# --- The run path: drafts, Sent copies and the Outlook approval path ----------------------


def test_the_mailbox_stage_asks_the_server_once_a_connection(server_named_like, tmp_path):
    from mailbot import config as config_module
    from mailbot.mailbox.fetch import Mailbox

    exchange = server_named_like(EXCHANGE)
    config = config_module.load(write_config(tmp_path, exchange, 1))
    with Mailbox.connect(config.mailbox) as mailbox:
        lists, real = [], mailbox.client.folder.list
        mailbox.client.folder.list = lambda *a, **k: lists.append(a) or real(*a, **k)
        assert mailbox.sent_folder == "Sent Items"
        assert mailbox.folder_for("drafts") == "Drafts"
        assert mailbox.folder_for("trash") == "Deleted Items"
        assert mailbox.folder_for("sent", "Mailbot sent") == "Mailbot sent"  # configured
        assert mailbox.sent_folder == "Sent Items"
    assert len(lists) == 1


RUN_CASES = {
    # server's folders, [mailbox] lines, [drafts] lines, Drafts used, Sent used, left alone
    "exchange": (EXCHANGE, "", "", "Drafts", "Sent Items", ["Sent"]),
    "gmail": (GMAIL, "", "", "[Gmail]/Drafts", "[Gmail]/Sent Mail", ["Drafts", "Sent"]),
    "flags none": ({"Archive": "\\Archive"}, "", "", "Drafts", "Sent", []),
    "configured": (EXCHANGE, 'sent_folder = "Sent"', 'drafts_folder = "Mailbot drafts"',
                   "Mailbot drafts", "Sent", ["Drafts", "Sent Items"]),
}


@pytest.mark.parametrize("case", RUN_CASES.values(), ids=RUN_CASES.keys())
def test_run_once_places_drafts_and_files_sent_copies_in_the_servers_own_folders(
    server_named_like, smtp_sink, tmp_path, capsys, case
):
    from tests.forms import portal_form
    from tests.test_drafts import FAMILY, family_form
    from tests.test_signposting import SAFETY_TEAM, THREAT_TO_LIFE

    folders, mailbox_extra, drafts_extra, drafts, sent, left_alone = case
    server = server_named_like(folders)
    path = write_config(
        tmp_path, server, smtp_sink.port, state_dir=tmp_path / "state",
        mailbox_extra=mailbox_extra or "poll_interval_seconds = 1",
        extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\n\n[drafts]\n{drafts_extra}\n')

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--config", str(path), *args])
        return code, capsys.readouterr().out

    server.append(family_form(message_id="<form-1@portal.example.org>",  # an alert
                              text=THREAT_TO_LIFE))
    server.append(portal_form(message_id="<visits-1@portal.example.org>"))  # an enquiry
    assert run("run", "--once")[0] == 0
    emailed = smtp_sink.parsed()
    assert sorted(r for m in smtp_sink.messages for r in m["rcpt_tos"]) == [
        SAFETY_TEAM, "sam.sample@example.net"]  # the concern's alert, the signposting reply
    with server.mailbox() as box:
        box.folder.set(drafts)
        [copy] = list(box.fetch(mark_seen=False))
        box.folder.set(sent)
        filed = sorted("".join(m.headers["message-id"][0].split())
                       for m in box.fetch(mark_seen=False))
    assert "\\Draft" in copy.flags and "[SC-" in copy.subject
    assert filed == sorted(str(m["Message-ID"]).strip() for m in emailed)  # each, once
    assert server.folder_counts(*left_alone) == dict.fromkeys(left_alone, 0)

    # An officer sends the draft from Outlook: the server files it in its own Sent.
    response = EmailMessage()
    response["From"] = "Officer Smith <safercustody.exampletown@prison.example>"
    response["To"] = FAMILY
    response["Subject"] = copy.subject
    response["Message-ID"] = "<outlook-1@prison.example>"
    response.set_content("Dear Jane, thank you for telling us. We have seen him. Officer Smith")
    server.append(response.as_bytes(), folder=sent)
    with server.mailbox() as box:  # Outlook takes the draft out of Drafts as it sends it
        box.folder.set(drafts)
        box.delete(box.uids("ALL"))
    assert run("run", "--once")[0] == 0
    code, out = run("drafts", "list", "--json", "--all")
    assert code == 0
    [draft] = [d for d in json.loads(out) if d["reference"] in copy.subject]
    assert draft["status"] == "sent_by_staff"
    assert len(smtp_sink.messages) == 2  # mailbot itself sent nothing more
