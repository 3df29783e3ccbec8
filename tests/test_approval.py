"""What "responded" means, with real Dovecot and SMTP: a response counts when it reached
the family. An approval counts once SMTP accepted it (until then "approved, not yet
sent", and the 72-hour clock runs); an empty or unchanged edit is refused; an approval
that cannot be sent now is queued and says so; an email sent from Outlook counts only
when it went to the family, with no places left and the consent check passed, and is
recorded as made by the officer, else as staff mail about the concern."""

from __future__ import annotations

import json
from datetime import timedelta
from email.message import EmailMessage

import pytest

from mailbot import db
from mailbot.casework import deadlines
from mailbot.cli import main
from mailbot.config import load
from mailbot.db.models import utcnow
from mailbot.devtools.devservers import SmtpSink, free_port
from mailbot.replies.drafts import NOT_YET_SENT
from tests.test_drafts import FAMILY, family_form

pytestmark = pytest.mark.servers

SHARED = "safercustody.exampletown@prison.example"
SAFETY_TEAM = "safety.team@prison.example"
EXTRA = f"""
[alerts]
safety_team = ["{SAFETY_TEAM}"]

[replies]
retry_base_seconds = 0
"""


class Cli:
    """`mailbot --config PATH ...` in this process, as staff would type it."""

    def __init__(self, path, capsys) -> None:  # type: ignore[no-untyped-def]
        self.path, self.capsys = str(path), capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", self.path, *args])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def drafts(self, *options: str) -> list[dict]:
        code, out, err = self("drafts", "list", "--json", *options)
        assert code == 0, err
        return json.loads(out)

    def concern(self, reference: str) -> dict:
        code, out, err = self("concerns", "show", reference)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(dovecot, smtp_sink, make_config, capsys):  # type: ignore[no-untyped-def]
    path, _ = make_config(smtp_port=smtp_sink.port, extra=EXTRA)
    return Cli(path, capsys)


def logged_concern(dovecot, cli, **form) -> dict:  # type: ignore[no-untyped-def]
    dovecot.append(family_form(**form))
    assert cli("run", "--once")[0] == 0
    [draft] = cli.drafts()
    return draft


def grant_full_consent(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("consent", "grant", "--prisoner", "A1234BC", "--contact", FAMILY,
                       "--scope", "full", "--by", "Officer Smith")
    assert code == 0, err


def draft_text(cli, draft_id: int) -> str:  # type: ignore[no-untyped-def]
    code, out, _ = cli("drafts", "show", str(draft_id))
    assert code == 0
    return out.split("\n\n", 1)[1]


def digest_70_hours_on(cli) -> str:  # type: ignore[no-untyped-def]
    """The safety team's deadline digest as the check would write it 70 hours on ("" when
    no concern would be in it). Nothing is sent: the check is rolled back."""
    config = load(cli.path)
    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        later = utcnow() + timedelta(hours=70)
        crossed = deadlines.check(session, config, now=later)
        text = deadlines.digest(config, crossed, later).text if crossed else ""
        session.rollback()
    engine.dispose()
    return text


def clock_running(cli, reference: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the deadline check, 70 hours on, still counts this concern as unanswered."""
    return reference in digest_70_hours_on(cli)


# --- Approval from the command line --------------------------------------------------


def test_an_empty_edit_is_refused_and_nothing_is_sent(dovecot, smtp_sink, cli, tmp_path):
    draft = logged_concern(dovecot, cli)
    edit = tmp_path / "edit.txt"
    edit.write_text("\n")
    code, _, err = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith",
                       "--edit", str(edit))
    assert code == 5
    assert "is empty, so nothing would reach the family" in err
    assert "approve without --edit" in err
    assert [m for m in smtp_sink.messages if FAMILY in m["rcpt_tos"]] == []
    assert cli.drafts()[0]["state"] == "awaiting approval"


def test_an_edit_leaving_the_places_for_staff_as_they_were_is_refused(
    dovecot, smtp_sink, cli, tmp_path
):
    grant_full_consent(cli)
    draft = logged_concern(dovecot, cli)
    assert draft["template"] == "ack_consent"
    text = draft_text(cli, draft["id"])
    assert "[[STAFF:" in text
    edit = tmp_path / "edit.txt"
    edit.write_text(text.replace("Thank you for contacting", "Thank you very much for contacting"))
    code, _, err = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith",
                       "--edit", str(edit))
    assert code == 5
    assert "leaves its places for staff as they were" in err and "[[STAFF: welfare check" in err
    # One place filled, the others left: still refused, naming what is left.
    lines = [line for line in text.splitlines() if not line.startswith("[[STAFF: welfare")]
    edit.write_text("\n".join(lines))
    code, _, err = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith",
                       "--edit", str(edit))
    assert code == 5 and "still has places for staff to fill in or delete" in err
    assert "[[STAFF: welfare" not in err and "[[STAFF: ACCT" in err
    assert [m for m in smtp_sink.messages if FAMILY in m["rcpt_tos"]] == []


def test_an_approval_while_smtp_is_down_is_queued_and_the_clock_runs_until_it_is_sent(
    dovecot, make_config, capsys, database_url
):
    port = free_port()  # nothing listens here yet
    path, _ = make_config(smtp_port=port, extra=EXTRA, database_url=database_url)
    cli = Cli(path, capsys)
    draft = logged_concern(dovecot, cli)
    reference = draft["reference"]

    code, out, err = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code == 0, err
    assert out == (f"draft {draft['id']} approved for {reference} and queued: it will be "
                   f"sent when the mail server answers\n")
    # Still in the list of what needs watching, and the concern is not answered.
    [row] = cli.drafts()
    assert (row["status"], row["state"]) == ("approved", NOT_YET_SENT)
    assert NOT_YET_SENT in cli("drafts", "list")[1]
    concern = cli.concern(reference)
    assert concern["response"] == NOT_YET_SENT
    assert concern["responded_at"] is None and concern["status"] == "new"
    assert concern["drafts"][0]["state"] == NOT_YET_SENT
    assert clock_running(cli, reference)
    assert f"draft {draft['id']} (ack_no_consent) approved, not yet sent" in (
        digest_70_hours_on(cli))
    assert "drafts awaiting approval: 0; approved, not yet sent: 1" in cli("status")[1]

    # A pass that cannot reach the mail server says so, in one line, and fails.
    code, out, err = cli("run", "--once")
    assert code == 3
    [line] = [line for line in err.splitlines() if line.startswith("mailbot:")]
    assert line.startswith("mailbot: could not send 1 queued email(s): the mail server ")
    assert "is unreachable" in line and line.endswith("they stay queued for the next pass")

    sink = SmtpSink.start(port=port)
    try:
        assert cli("run", "--once")[0] == 0
        assert cli("run", "--once")[0] == 0
    finally:
        sink.stop()
    delivered = [m for m in sink.messages if m["rcpt_tos"] == [FAMILY]]
    assert len(delivered) == 1
    concern = cli.concern(reference)
    assert concern["responded_at"] is not None and concern["responded_by"] == "Officer Smith"
    assert concern["response"].startswith("responded ")
    assert concern["status"] == "responded"
    assert concern["drafts"][0]["state"] == "sent"
    assert cli.drafts() == []
    assert not clock_running(cli, reference)
    assert "approved, not yet sent: 0" in cli("status")[1]


def test_an_approval_from_a_shell_that_cannot_read_the_smtp_secret_is_queued(
    dovecot, smtp_sink, make_config, capsys, tmp_path
):
    path, _ = make_config(smtp_port=smtp_sink.port, extra=EXTRA)
    cli = Cli(path, capsys)
    draft = logged_concern(dovecot, cli)
    readable = path.read_text()
    secret = tmp_path / "not-readable-here" / "smtp-password"
    path.write_text(readable.replace(
        "[smtp]\n", f'[smtp]\nusername = "{SHARED}"\npassword_file = "{secret}"\n'))

    code, out, err = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code == 0, err
    assert out == (f"draft {draft['id']} approved for {draft['reference']} and queued: it "
                   f"will be sent when the mail server answers\n")
    assert cli.concern(draft["reference"])["response"] == NOT_YET_SENT
    assert smtp_sink.messages == []

    path.write_text(readable)  # the daemon, which can read it, sends it
    assert cli("run", "--once")[0] == 0
    assert cli("run", "--once")[0] == 0
    assert [m["rcpt_tos"] for m in smtp_sink.messages] == [[FAMILY]]
    assert cli.concern(draft["reference"])["responded_by"] == "Officer Smith"


def test_an_approval_sent_at_once_says_so_and_answers_the_concern(dovecot, smtp_sink, cli):
    draft = logged_concern(dovecot, cli)
    code, out, err = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code == 0, err
    assert out == f"draft {draft['id']} approved for {draft['reference']} and sent\n"
    concern = cli.concern(draft["reference"])
    assert concern["responded_by"] == "Officer Smith" and concern["status"] == "responded"


def test_an_approval_the_mail_server_refuses_says_so_until_a_phone_call_is_recorded(
    dovecot, smtp_sink, cli
):
    draft = logged_concern(dovecot, cli)
    smtp_sink.replies.append("550 5.1.1 no such mailbox here")
    code, out, _ = cli("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code == 1
    assert out.startswith(f"draft {draft['id']} approved for {draft['reference']}, but not "
                          "sent: 550")
    assert f"mailbot concerns respond {draft['reference']}" in out
    [row] = cli.drafts()
    assert row["state"].startswith("approved, not sent: 550")
    concern = cli.concern(draft["reference"])
    assert concern["responded_at"] is None and concern["response"].startswith("approved, not")
    assert clock_running(cli, draft["reference"])
    assert cli("concerns", "respond", draft["reference"], "--by", "Officer Smith",
               "--method", "phone", "--note", "rang Jane")[0] == 0
    assert cli.drafts() == []
    assert cli.concern(draft["reference"])["responded_by"] == "Officer Smith"


# --- Approval from Outlook: the Sent folder -------------------------------------------


def sent_item(subject: str, text: str, *, to: str = FAMILY, sender: str | None = None,
              from_: str = f"Officer Smith <{SHARED}>", number: int = 1) -> bytes:
    msg = EmailMessage()
    msg["From"] = from_
    if sender:
        msg["Sender"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<outlook-{number}@prison.example>"
    msg.set_content(text)
    return msg.as_bytes()


CLEAN_REPLY = ("Dear Jane, thank you for telling us. We have logged your concern and made "
               "the checks we can. Officer Smith")


def test_an_internal_forward_is_staff_mail_not_the_response(dovecot, smtp_sink, cli):
    draft = logged_concern(dovecot, cli)
    dovecot.append(sent_item(f"FW: {draft['subject']}", "Healthcare: please see him today.",
                             to="healthcare@prison.example"), folder="Sent")
    assert cli("run", "--once")[0] == 0
    concern = cli.concern(draft["reference"])
    assert concern["responded_at"] is None and concern["response"] == "no response yet"
    [mail] = concern["staff_mail"]
    assert mail["by"] == "Officer Smith"
    assert mail["to"] == ["healthcare@prison.example"]
    assert mail["not_the_response"] == [
        f"not addressed to the family's address on the concern ({FAMILY})"]
    assert cli.drafts()[0]["state"] == "awaiting approval"  # still to be answered
    assert clock_running(cli, draft["reference"])


def test_a_reply_with_places_left_to_fill_is_not_the_response(dovecot, smtp_sink, cli):
    grant_full_consent(cli)
    draft = logged_concern(dovecot, cli)
    text = draft_text(cli, draft["id"])
    dovecot.append(sent_item(draft["subject"], text), folder="Sent")
    assert cli("run", "--once")[0] == 0
    concern = cli.concern(draft["reference"])
    assert concern["responded_at"] is None
    [mail] = concern["staff_mail"]
    [reason] = mail["not_the_response"]
    assert reason.startswith("places for staff left to fill: [[STAFF: welfare check")
    assert clock_running(cli, draft["reference"])


def test_a_reply_naming_the_prisoner_without_consent_is_not_the_response(
    dovecot, smtp_sink, cli
):
    draft = logged_concern(dovecot, cli)
    assert draft["template"] == "ack_no_consent"
    dovecot.append(sent_item(draft["subject"], "Dear Jane, Johnny Prisoner is on Houseblock 4."),
                   folder="Sent")
    assert cli("run", "--once")[0] == 0
    concern = cli.concern(draft["reference"])
    assert concern["responded_at"] is None
    [reason] = concern["staff_mail"][0]["not_the_response"]
    assert reason.startswith("consent: ") and "name or locate the prisoner" in reason
    assert "prisoner name" in reason and "location" in reason


def test_a_reply_written_under_consent_since_withdrawn_is_not_the_response(
    dovecot, smtp_sink, cli
):
    grant_full_consent(cli)
    draft = logged_concern(dovecot, cli)
    assert cli("consent", "withdraw", "--prisoner", "A1234BC", "--contact", FAMILY,
               "--by", "Officer Jones")[0] == 0
    dovecot.append(sent_item(draft["subject"], CLEAN_REPLY), folder="Sent")
    assert cli("run", "--once")[0] == 0
    concern = cli.concern(draft["reference"])
    assert concern["responded_at"] is None
    [reason] = concern["staff_mail"][0]["not_the_response"]
    assert reason.startswith(f"consent: draft {draft['id']} was written with consent 'full'")


@pytest.mark.parametrize("from_, sender, officer", [
    (f"Officer Smith <{SHARED}>", None, "Officer Smith"),
    (f"HMP Exampletown Safer Custody <{SHARED}>", "Officer Jones <o.jones@justice.example>",
     "Officer Jones"),
    (SHARED, "o.jones@justice.example", "o.jones@justice.example"),
    (f"HMP Exampletown Safer Custody <{SHARED}>", None, "Outlook (shared mailbox)"),
    (SHARED, None, "Outlook (shared mailbox)"),
], ids=["from-names-officer", "sender-names-officer", "sender-address", "mailbox-name",
        "bare-mailbox"])
def test_a_reply_to_the_family_is_the_response_made_by_the_officer(
    dovecot, smtp_sink, cli, from_, sender, officer
):
    draft = logged_concern(dovecot, cli)
    dovecot.append(sent_item(draft["subject"], CLEAN_REPLY, from_=from_, sender=sender),
                   folder="Sent")
    assert cli("run", "--once")[0] == 0
    concern = cli.concern(draft["reference"])
    assert concern["responded_at"] is not None
    assert concern["responded_by"] == officer
    assert concern["staff_mail"] == []
    assert concern["drafts"][0]["status"] == "sent_by_staff"
    assert not clock_running(cli, draft["reference"])
    assert smtp_sink.messages == []  # nothing sent by mailbot itself


def test_staff_mail_then_the_real_reply_on_postgresql_too(
    dovecot, smtp_sink, make_config, capsys, database_url
):
    path, _ = make_config(smtp_port=smtp_sink.port, extra=EXTRA, database_url=database_url)
    cli = Cli(path, capsys)
    draft = logged_concern(dovecot, cli)
    dovecot.append(sent_item(f"FW: {draft['subject']}", "Chaplaincy: could you visit him?",
                             to="chaplaincy@prison.example", number=1), folder="Sent")
    assert cli("run", "--once")[0] == 0
    assert cli.concern(draft["reference"])["responded_at"] is None
    dovecot.append(sent_item(draft["subject"], CLEAN_REPLY, number=2), folder="Sent")
    assert cli("run", "--once")[0] == 0
    concern = cli.concern(draft["reference"])
    assert concern["responded_by"] == "Officer Smith"
    assert [m["message_id"] for m in concern["staff_mail"]] == ["<outlook-1@prison.example>"]
