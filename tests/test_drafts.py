"""Consent-aware acknowledgements, end to end with real Dovecot and SMTP: the right draft
for the consent in force, approval that re-checks consent, exactly one email, the audit
trail, and approval from a mail client through the Drafts and Sent folders."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.cli import main
from mailbot.db.models import AuditEvent, Draft
from tests.conftest import REPO, sample_bytes
from tests.forms import portal_form

pytestmark = pytest.mark.servers

FAMILY = "jane.family@example.com"
CONCERN = "He has been self harming again and says he is being bullied on the wing."


FORM_MESSAGE_ID = "form-77@portal.example.org"


def family_form(**overrides) -> bytes:  # type: ignore[no-untyped-def]
    values = {
        "name": "Jane Family",
        "email": FAMILY,
        "prisoner_name": "Johnny Prisoner",
        "prisoner_number": "a1234bc",
        "location": "Houseblock 4",
        "topic": "Self-harm or suicide",
        "urgency": "I am worried about their safety",
        "text": CONCERN,
    }
    values.update(overrides)
    return portal_form(**values)


@pytest.fixture
def setup(dovecot, smtp_sink, make_config, capsys):  # type: ignore[no-untyped-def]
    path, config = make_config(smtp_port=smtp_sink.port)

    class Run:
        config_path = str(path)

        def __call__(self, *args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(["--config", self.config_path, *args])
            captured = capsys.readouterr()
            return code, captured.out, captured.err

        def drafts(self) -> list[dict]:
            code, out, _ = self("drafts", "list", "--json", "--all")
            assert code == 0
            return json.loads(out)

        def audit(self) -> list[tuple[str, str]]:
            engine = db.make_engine(config.database.url)
            with db.session_factory(engine)() as session:
                rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
                result = [(e.action, e.actor) for e in rows]
            engine.dispose()
            return result

        def draft_text(self, draft_id: int) -> str:
            engine = db.make_engine(config.database.url)
            with db.session_factory(engine)() as session:
                text = session.get(Draft, draft_id).body_text
            engine.dispose()
            return text

    return Run()


def test_no_consent_draft_says_nothing_about_the_prisoner(dovecot, smtp_sink, setup):
    dovecot.append(family_form())
    assert setup("run", "--once")[0] == 0
    [draft] = setup.drafts()
    assert draft["template"] == "ack_no_consent" and draft["consent"] == "none"
    text = setup.draft_text(draft["id"]).lower()
    for secret in ("johnny", "a1234bc", "houseblock"):
        assert secret not in text
    assert draft["reference"] in draft["subject"]
    assert smtp_sink.messages == []  # nothing is sent without approval


def test_consent_granted_changes_the_next_draft(dovecot, setup):
    code, out, err = setup("consent", "grant", "--prisoner", "A1234BC", "--contact", FAMILY,
                           "--scope", "full", "--by", "Officer Smith", "--note", "on phone")
    assert code == 0, err
    dovecot.append(family_form())
    assert setup("run", "--once")[0] == 0
    [draft] = setup.drafts()
    assert draft["template"] == "ack_consent" and draft["consent"] == "full"
    assert "Johnny Prisoner" in setup.draft_text(draft["id"])


def test_withdrawn_consent_makes_approval_refuse_and_offer_a_redraft(
    dovecot, smtp_sink, setup, tmp_path
):
    setup("consent", "grant", "--prisoner", "A1234BC", "--contact", FAMILY, "--scope", "full",
          "--by", "Officer Smith")
    dovecot.append(family_form())
    setup("run", "--once")
    [draft] = setup.drafts()
    assert draft["template"] == "ack_consent"
    code, _, _ = setup("consent", "withdraw", "--prisoner", "A1234BC", "--contact", FAMILY,
                       "--by", "Officer Jones")
    assert code == 0
    filled = tmp_path / "filled.txt"
    filled.write_text("Dear Jane Family,\nJohnny Prisoner has been seen today.\n")
    code, _, err = setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith",
                         "--edit", str(filled))
    assert code != 0
    assert "redraft" in err
    assert smtp_sink.messages == []
    code, out, _ = setup("drafts", "redraft", str(draft["id"]), "--by", "Officer Smith")
    assert code == 0
    templates = {d["template"]: d["status"] for d in setup.drafts()}
    assert templates == {"ack_consent": "superseded", "ack_no_consent": "draft"}


def test_approval_sends_exactly_one_email_and_writes_the_audit_trail(
    dovecot, smtp_sink, setup
):
    dovecot.append(family_form())
    setup("run", "--once")
    [draft] = setup.drafts()
    code, out, err = setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code == 0, err
    assert "sent" in out
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["rcpt_tos"] == [FAMILY]
    [email] = smtp_sink.parsed()
    assert f"[{draft['reference']}]" in email["Subject"]
    # Approving again is refused, and a later run sends nothing more.
    assert setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")[0] != 0
    setup("run", "--once")
    assert len(smtp_sink.messages) == 1
    code, out, _ = setup("export")
    [entry] = json.loads(out)
    assert entry["responded_at"] is not None
    assert entry["first_response_hours"] is not None
    assert entry["drafts"] == [{"id": draft["id"], "template": "ack_no_consent",
                                "status": "sent"}]
    assert entry["consent"] == "none"
    actions = [action for action, _ in setup.audit()]
    assert actions == ["draft_created", "draft_approved", "draft_sent"]
    # Named with --by: recorded as typed there, not as a signed-in officer.
    assert ("draft_approved", "Officer Smith (--by on the command line)") in setup.audit()


def test_consent_draft_cannot_go_with_places_left_to_fill(dovecot, smtp_sink, setup):
    setup("consent", "grant", "--prisoner", "A1234BC", "--contact", FAMILY, "--scope", "full",
          "--by", "Officer Smith")
    dovecot.append(family_form())
    setup("run", "--once")
    [draft] = setup.drafts()
    code, _, err = setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code != 0 and "fill in" in err
    assert smtp_sink.messages == []


def test_an_edit_naming_the_prisoner_is_refused_without_consent(
    dovecot, smtp_sink, setup, tmp_path
):
    dovecot.append(family_form())
    setup("run", "--once")
    [draft] = setup.drafts()
    edit = tmp_path / "edit.txt"
    edit.write_text("Dear Jane, Johnny Prisoner is on Houseblock 4 and is fine.\n")
    code, _, err = setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith",
                         "--edit", str(edit))
    assert code != 0 and "name or locate" in err
    assert smtp_sink.messages == []


def test_unverified_and_restricted_contacts_get_their_own_templates(dovecot, setup):
    setup("consent", "restrict", "--prisoner", "B2345CD", "--contact", "stalker@example.org",
          "--by", "Officer Smith", "--note", "restraining order")
    dovecot.append(family_form(verified=False, email="someone@example.org"))
    dovecot.append(family_form(email="stalker@example.org", prisoner_number="B2345CD"))
    setup("run", "--once")
    templates = sorted(d["template"] for d in setup.drafts())
    assert templates == ["ack_restricted", "ack_unverified"]


def test_a_reply_from_the_family_joins_its_concern(dovecot, setup):
    dovecot.append(family_form())
    setup("run", "--once")
    [draft] = setup.drafts()
    reply = EmailMessage()
    reply["From"] = f"Jane Family <{FAMILY}>"
    reply["To"] = "safercustody.exampletown@prison.example"
    reply["Subject"] = f"Re: Your message [{draft['reference']}]"
    reply["Message-ID"] = "<reply-1@example.com>"
    reply.set_content("He rang again and is still being bullied.")
    dovecot.append(reply.as_bytes())
    setup("run", "--once")
    assert len(setup.drafts()) == 1
    code, out, _ = setup("export")
    entries = json.loads(out)
    assert entries[1]["related_reference"] == draft["reference"]


def test_drafts_folder_copy_and_a_response_sent_from_a_mail_client(
    dovecot, smtp_sink, setup
):
    dovecot.append(family_form(message_id=f"<{FORM_MESSAGE_ID}>"))
    setup("run", "--once")
    [draft] = setup.drafts()
    with dovecot.mailbox() as box:
        box.folder.set("Drafts")
        [copy] = list(box.fetch(mark_seen=False))
        assert "\\Draft" in copy.flags
        assert draft["reference"] in copy.subject
        # Threaded under the family's own message in the mail client.
        assert copy.headers["in-reply-to"] == (f"<{FORM_MESSAGE_ID}>",)
    # A member of staff edits and sends it from Outlook: the sent copy lands in Sent.
    sent = EmailMessage()
    sent["From"] = "Officer Smith <safercustody.exampletown@prison.example>"
    sent["To"] = FAMILY
    sent["Subject"] = copy.subject
    sent["Message-ID"] = "<outlook-123@prison.example>"
    sent.set_content("Dear Jane, thank you. We have made the checks we can. Officer Smith")
    dovecot.append(sent.as_bytes(), folder="Sent")
    setup("run", "--once")
    [after] = setup.drafts()
    assert after["status"] == "sent_by_staff"
    code, out, _ = setup("export")
    [entry] = json.loads(out)
    assert entry["responded_at"] is not None
    # Nothing was sent by mailbot itself, and the draft cannot be approved again.
    assert smtp_sink.messages == []
    assert setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")[0] != 0
    # Made by the officer whose name is on it, not by the shared mailbox.
    assert entry["responded_by"] == "Officer Smith"
    assert ("draft_sent", "Officer Smith") in setup.audit()


def test_a_draft_approved_in_mailbot_leaves_the_drafts_folder(dovecot, setup):
    dovecot.append(family_form())
    setup("run", "--once")
    [draft] = setup.drafts()
    assert dovecot.folder_counts("Drafts")["Drafts"] == 1
    assert setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")[0] == 0
    setup("run", "--once")
    assert dovecot.folder_counts("Drafts")["Drafts"] == 0


def test_templates_check_passes_on_shipped_templates(setup):
    code, out, err = setup("templates", "check")
    assert code == 0, err


def test_templates_check_names_the_file_and_variable(setup, tmp_path, make_config):
    override = tmp_path / "override" / "replies"
    override.mkdir(parents=True)
    (override / "ack_no_consent.txt.j2").write_text("Dear {{ submitter_name }}, "
                                                   "{{ prisoner_name }} is here.\n")
    path, _ = make_config(extra=f'[replies]\ntemplate_override_dir = "{tmp_path / "override"}"')
    setup.config_path = str(path)
    code, _, err = setup("templates", "check")
    assert code != 0
    assert "ack_no_consent.txt.j2" in err and "prisoner_name" in err
    (override / "ack_no_consent.txt.j2").write_text("Dear {{ submitter_name }, broken\n")
    code, _, err = setup("templates", "check")
    assert code != 0 and "ack_no_consent.txt.j2" in err


def test_templates_preview_renders_against_a_real_concern(dovecot, setup):
    dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
    setup("run", "--once")
    [draft] = setup.drafts()
    code, out, err = setup("templates", "preview", "ack_no_consent", "--concern",
                           draft["reference"])
    assert code == 0, err
    assert draft["reference"] in out


def test_a_broken_template_edit_keeps_the_last_good_one_and_alerts(
    dovecot, smtp_sink, make_config, tmp_path, capsys
):
    override = tmp_path / "override" / "replies"
    override.mkdir(parents=True)
    shipped = (REPO / "templates" / "replies" / "ack_no_consent.txt.j2").read_text()
    edited = override / "ack_no_consent.txt.j2"
    edited.write_text(shipped + "\nEdited by the admin.\n")
    path, config = make_config(
        smtp_port=smtp_sink.port,
        extra=f'[replies]\ntemplate_override_dir = "{tmp_path / "override"}"\n'
        '[alerts]\nsafety_team = ["safety.team@prison.example"]\n',
    )
    dovecot.append(family_form())
    assert main(["--config", str(path), "run", "--once"]) == 0
    edited.write_text(shipped + "\n{{ prisoner_name }} is with us.\n")
    dovecot.append(family_form(email="second.family@example.com"))
    assert main(["--config", str(path), "run", "--once"]) == 0

    engine = db.make_engine(config.database.url)
    with db.session_factory(engine)() as session:
        texts = [d.body_text for d in session.execute(select(Draft)).scalars()]
    engine.dispose()
    assert len(texts) == 2
    assert all("Edited by the admin." in text for text in texts)
    assert all("Johnny" not in text for text in texts)
    [alert] = [m for m in smtp_sink.parsed() if "template" in m["Subject"]]
    assert "ack_no_consent.txt.j2" in alert.get_content()


def test_the_whole_flow_on_postgresql_too(dovecot, smtp_sink, make_config, database_url,
                                          capsys):
    """Ingest, triage, draft, consent, approval, sending and export on each database."""
    path, _ = make_config(smtp_port=smtp_sink.port, database_url=database_url)
    cli = ["--config", str(path)]
    dovecot.append(family_form())
    dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    assert main([*cli, "run", "--once"]) == 0
    assert main([*cli, "consent", "grant", "--prisoner", "A1234BC", "--contact", FAMILY,
                 "--scope", "none", "--by", "Officer Smith"]) == 0
    capsys.readouterr()
    assert main([*cli, "drafts", "list", "--json"]) == 0
    [draft] = json.loads(capsys.readouterr().out)
    assert main([*cli, "drafts", "approve", str(draft["id"]), "--by", "Officer Smith"]) == 0
    assert main([*cli, "concerns", "action", draft["reference"], "--kind", "welfare_check",
                 "--by", "Officer Smith"]) == 0
    capsys.readouterr()
    assert main([*cli, "export"]) == 0
    entries = {e["reference"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries[draft["reference"]]["drafts"][0]["status"] == "sent"
    assert sorted(m["rcpt_tos"][0] for m in smtp_sink.messages) == [
        FAMILY, "sam.sample@example.net"]


def test_a_template_broken_from_the_start_alerts_and_keeps_the_entry(
    dovecot, smtp_sink, make_config, tmp_path, capsys
):
    override = tmp_path / "broken" / "replies"
    override.mkdir(parents=True)
    (override / "ack_no_consent.txt.j2").write_text("Dear {{ prisoner_name }}\n")
    path, _ = make_config(
        smtp_port=smtp_sink.port,
        extra=f'[replies]\ntemplate_override_dir = "{tmp_path / "broken"}"\n'
        '[alerts]\nsafety_team = ["safety.team@prison.example"]\n',
    )
    dovecot.append(family_form())
    assert main(["--config", str(path), "run", "--once"]) == 0
    capsys.readouterr()
    main(["--config", str(path), "export"])
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["drafts"] == []  # no draft from a template that breaks its policy
    [alert] = [m for m in smtp_sink.parsed() if "template" in str(m["Subject"])]
    assert "prisoner_name" in alert.get_content()


def test_a_staff_forward_gets_a_draft_with_no_address_to_send_to(dovecot, setup):
    forward = EmailMessage()
    forward["From"] = "safercustody.exampletown@prison.example"
    forward["To"] = "safercustody.exampletown@prison.example"
    forward["Subject"] = "FW: call from a mum about her son on B wing"
    forward["Message-ID"] = "<forward-1@prison.example>"
    forward.set_content("Mum rang: he is being bullied and is scared to leave his cell.")
    dovecot.append(forward.as_bytes())
    assert setup("run", "--once")[0] == 0
    [draft] = setup.drafts()
    assert draft["to"] == ""
    code, _, err = setup("drafts", "approve", str(draft["id"]), "--by", "Officer Smith")
    assert code != 0 and "no single valid address" in err
