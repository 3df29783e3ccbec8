"""Template versions (mailbot/replies/versions.py): the rules of saving, approving and
rolling back, pure; and on a real SQLite database, that the live version is what every
email is rendered from (drafts, the signposting reply, the alerts), and that
`mailbot templates export` writes the live set."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.db.models import AuditEvent
from mailbot.replies import policy, versions
from mailbot.replies.render import render_signposting, render_urgent_alert
from tests.forms import PRISON

NAME = "ack_no_consent"
KIND = "templates"
SHIPPED_TEXT = policy.parts_in_effect(policy.entry_for(KIND, NAME))["txt"]


def wording(text: str, subject: str = "About your message [{{ reference }}]",
            number: int = 1, name: str = NAME, kind: str = KIND):  # type: ignore[no-untyped-def]
    return versions.wording(kind, name, number, subject=subject, text=text, html=None)


# --- the rules, pure ----------------------------------------------------------------------

def test_the_author_may_not_approve_their_own_version() -> None:
    refusal = versions.approval_refusal(2, "Admin Patel", 1, "Admin Patel")
    assert refusal and "you wrote version 2" in refusal and "another manager" in refusal
    assert versions.approval_refusal(2, "Admin Patel", 1, " admin patel ")  # same person
    assert versions.approval_refusal(2, "Admin Patel", 1, "Manager Jones") is None


def test_a_rollback_is_an_approval_and_follows_the_same_rule() -> None:
    assert versions.approval_refusal(1, "Admin Patel", 3, "Admin Patel", rollback=True)
    assert versions.approval_refusal(1, "Admin Patel", 3, "Manager Jones", rollback=True) is None
    # the shipped files have no author: anyone with the role may roll back to them
    assert versions.approval_refusal(0, None, 3, "Admin Patel", rollback=True) is None
    assert "newer" in versions.approval_refusal(4, "A", 3, "B", rollback=True)
    assert "already live" in versions.approval_refusal(3, "A", 3, "B")
    assert versions.approval_refusal(2, "A", 1, "  ")


def test_a_save_is_refused_with_the_check_s_reason() -> None:
    live = wording(SHIPPED_TEXT, number=0)
    bad = wording("Dear {{ submitter_name }}, about {{ prisoner_name }}")
    checked = policy.examine(KIND, NAME, bad)
    refusal = versions.save_refusal(KIND, NAME, bad, live, checked.problems)
    assert refusal and "prisoner_name" in refusal
    assert "names or locates the prisoner; not allowed where consent = none" in refusal
    assert checked.unknown == {"prisoner_name"}
    assert "prisoner_name" not in checked.allowed and "reference" in checked.allowed


def test_unknown_variables_and_broken_syntax_are_refused() -> None:
    for text, words in (("Dear {{ who }}", "'who', which templates/replies/policy.toml "
                                           "does not declare for ack_no_consent"),
                        ("Dear {% if %}", "syntax error"),
                        ("{{ reference.__class__ }}", "internal attribute")):
        checked = policy.examine(KIND, NAME, wording(text))
        assert any(words in str(p) for p in checked.problems), (text, checked.problems)


def test_an_unchanged_or_empty_wording_is_refused() -> None:
    live = wording("Same text {{ reference }}", number=3)
    same = wording("Same text {{ reference }}", number=4)
    assert "nothing changed" in versions.save_refusal(KIND, NAME, same, live, [])
    assert "subject is empty" in versions.save_refusal(
        KIND, NAME, wording("x", subject=" "), live, [])
    assert "text part is empty" in versions.save_refusal(KIND, NAME, wording(""), live, [])


def test_the_outage_alerts_are_file_only() -> None:
    candidate = wording("down", name="outage", kind="alerts")
    assert "always rendered from its file" in versions.save_refusal(
        "alerts", "outage", candidate, candidate, [])


def test_a_text_edit_beside_an_unchanged_html_part_is_warned_of() -> None:
    live = versions.wording(KIND, NAME, 0, subject="S", text="old", html="<p>old</p>")
    same_html = versions.wording(KIND, NAME, 1, subject="S", text="new", html="<p>old</p>")
    assert "HTML part did not" in versions.out_of_step(live, same_html)
    assert versions.out_of_step(live, versions.wording(KIND, NAME, 1, subject="S",
                                                       text="new", html="")) is None
    assert versions.out_of_step(live, versions.wording(KIND, NAME, 1, subject="S",
                                                       text="new", html="<p>new</p>")) is None


def test_variable_changes_and_the_diff() -> None:
    assert versions.variable_changes({"a", "b"}, {"b", "c"}) == (["c"], ["a"])
    old, new = wording("one\ntwo <b>\nthree", number=1), wording("one\n2 <b>\nthree", number=2)
    [(part, lines)] = versions.diff(old, new)
    assert part == "txt"
    assert ("removed", "-two <b>") in [(line.kind, line.text) for line in lines]
    assert ("added", "+2 <b>") in [(line.kind, line.text) for line in lines]


# --- on a database ------------------------------------------------------------------------

@pytest.fixture
def sessions(tmp_path):  # type: ignore[no-untyped-def]
    engine = db.make_engine(f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    db.upgrade(engine)
    yield db.session_factory(engine)
    engine.dispose()


def test_a_version_is_live_only_once_approved_and_a_rollback_restores_the_old(sessions):
    with sessions() as session:
        assert versions.live(session) == {}
        version = versions.save(session, KIND, NAME, subject="Thank you [{{ reference }}]",
                                text="New words for {{ submitter_name }}.", html=None,
                                by="Admin Patel", note="shorter")
        assert version.number == 1 and version.based_on == 0
        assert versions.live(session) == {}  # saved, not approved
        with pytest.raises(versions.VersionError, match="you wrote version 1"):
            versions.approve(session, KIND, NAME, 1, by="Admin Patel")
        versions.approve(session, KIND, NAME, 1, by="Manager Jones")
        live = versions.live(session)
        assert live[(KIND, NAME)].part("txt") == "New words for {{ submitter_name }}."
        rendered = policy.render_acknowledgement(
            NAME, {**policy.sample_context(), "submitter_name": "Jane"}, live=live)
        assert rendered.text == "New words for Jane." and rendered.html is None

        versions.save(session, KIND, NAME, subject="Hi", text="Third {{ reference }}",
                      html=None, by="Admin Patel")
        versions.approve(session, KIND, NAME, 2, by="Manager Jones")
        assert versions.live_number(session, KIND, NAME) == 2
        versions.rollback(session, KIND, NAME, 0, by="Manager Jones")
        assert versions.live_number(session, KIND, NAME) == 0
        assert versions.live(session) == {}
        rendered = policy.render_acknowledgement(NAME, policy.sample_context(),
                                                 live=versions.live(session))
        assert "We take every concern seriously" in rendered.text
        session.commit()
        actions = [e.action for e in session.execute(
            select(AuditEvent).order_by(AuditEvent.id)).scalars()]
    assert actions == ["template_version_saved", "template_version_approved",
                       "template_version_saved", "template_version_approved",
                       "template_rolled_back"]


def test_signposting_and_alerts_use_the_live_version(sessions):
    with sessions() as session:
        versions.save(session, KIND, "signposting", subject="Where to ask [{{ reference }}]",
                      text="Ask about {{ category }} at {{ prison.name }}.", html=None,
                      by="Admin Patel")
        versions.approve(session, KIND, "signposting", 1, by="Manager Jones")
        versions.save(session, "alerts", "urgent", subject="URGENT {{ reference }}",
                      text="Look at {{ reference }} now ({{ urgency }}).", html="",
                      by="Admin Patel")
        versions.approve(session, "alerts", "urgent", 1, by="Manager Jones")
        live = versions.live(session)
    email = render_signposting(category="visits", reference="R1", prison=PRISON, live=live)
    assert email.subject == "Where to ask [R1]" and email.html is None
    assert email.text == f"Ask about visits at {PRISON.name}."
    alert = render_urgent_alert(
        reference="R2", received_at=datetime(2026, 11, 14, 21, 46, tzinfo=UTC),
        urgency="immediate", reasons=["x"], source="portal_form", verified=True,
        include_text=False, prison=PRISON, live=live)
    assert alert.text == "Look at R2 now (immediate)." and alert.subject == "URGENT R2"
    # without the lookup's answer, the shipped files
    assert "URGENT" in render_urgent_alert(
        reference="R2", received_at=datetime(2026, 11, 14, 21, 46, tzinfo=UTC),
        urgency="immediate", reasons=["x"], source="portal_form", verified=True,
        include_text=False, prison=PRISON).text


def test_a_version_that_no_longer_passes_is_not_approved(sessions, monkeypatch):
    with sessions() as session:
        versions.save(session, KIND, NAME, subject="S", text="T {{ submitter_name }}",
                      html=None, by="Admin Patel")
        entry = policy.entry_for(KIND, NAME)
        narrower = policy.Entry(entry.kind, entry.name, entry.consent,
                                entry.variables - {"submitter_name"})
        real = policy.examine

        def examine_under_narrower_policy(kind, name, stored=None, override_dir=None):
            found = real(kind, name, stored, override_dir)
            if "submitter_name" in found.used:
                return policy.Examination(narrower, (policy.Problem("x", "uses "
                                          "'submitter_name', no longer declared"),),
                                          narrower.variables, found.used)
            return found

        monkeypatch.setattr(policy, "examine", examine_under_narrower_policy)
        with pytest.raises(versions.VersionError, match="no longer passes"):
            versions.approve(session, KIND, NAME, 1, by="Manager Jones")


def test_export_writes_the_live_set(sessions, tmp_path: Path):
    with sessions() as session:
        versions.save(session, KIND, NAME, subject="Exported [{{ reference }}]",
                      text="Exported {{ reference }}", html=None, by="Admin Patel")
        versions.approve(session, KIND, NAME, 1, by="Manager Jones")
        out = tmp_path / "export"
        written = versions.export(session, out)
    assert (out / "replies" / f"{NAME}.txt.j2").read_text() == "Exported {{ reference }}"
    assert not (out / "replies" / f"{NAME}.html.j2").exists()  # version 1 has no HTML
    assert (out / "replies/consented/ack_consent.txt.j2").is_file()
    assert (out / "replies/_signposting_suggestions.j2").is_file()
    assert (out / "alerts/urgent.txt.j2").is_file()
    assert f"templates.{NAME}: version 1" in (out / "VERSIONS.txt").read_text()
    assert len(written) > 20
    # the export is a complete set: it passes the check as an override directory
    assert policy.check_templates(out) == []


def test_templates_export_command(sessions, tmp_path: Path):
    from click.testing import CliRunner

    from mailbot.cli import cli

    config_file = tmp_path / "mailbot.toml"
    config_file.write_text(f"""
[prison]
name = "HMP Exampletown"
[mailbox]
host = "127.0.0.1"
username = "u"
password_env = "UNUSED"
[smtp]
host = "127.0.0.1"
from_address = "sc@prison.example"
[state]
directory = "{tmp_path}"
[database]
url = "sqlite:///{tmp_path / 'mailbot.sqlite3'}"
""")
    with sessions() as session:
        versions.save(session, KIND, NAME, subject="S [{{ reference }}]",
                      text="By the command {{ reference }}", html=None, by="Admin Patel")
        versions.approve(session, KIND, NAME, 1, by="Manager Jones")
        session.commit()
    out = tmp_path / "backup"
    result = CliRunner().invoke(cli, ["--config", str(config_file), "templates", "export",
                                       "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "replies" / f"{NAME}.txt.j2").read_text() == "By the command {{ reference }}"
    checked = CliRunner().invoke(cli, ["--config", str(config_file), "templates", "check",
                                       "--live"])
    assert checked.exit_code == 0 and "templates OK" in checked.output, checked.output


def test_templates_check_live_names_a_live_version_that_no_longer_passes(sessions):
    with sessions() as session:
        versions.save(session, KIND, NAME, subject="S", text="T {{ reference }}", html=None,
                      by="Admin Patel")
        versions.approve(session, KIND, NAME, 1, by="Manager Jones")
        live = dict(versions.live(session))
    # as if policy.toml had since narrowed what the template may use
    live[(KIND, NAME)] = versions.wording(KIND, NAME, 1, subject="S",
                                          text="T {{ prisoner_number }}", html=None)
    problems = [str(p) for p in policy.check_templates(live=live)]
    assert any(p.startswith(f"{NAME} version 1 (txt part):1: uses 'prisoner_number'")
               for p in problems), problems


def test_a_live_version_that_no_longer_passes_gives_way_to_the_files() -> None:
    """A stored version broken by a later policy edit, with no good version rendered
    since the start: the shipped files answer, and the rejection is reported."""
    broken = versions.wording(KIND, "ack_restricted", 7, subject="S {{ reference }}",
                              text="T {{ submitter_name }}", html=None)
    live = {(KIND, "ack_restricted"): broken}
    email = policy.render_acknowledgement("ack_restricted", policy.sample_context(),
                                          live=live)
    rejected = [str(p) for p in policy.rejected_templates()]
    assert any("ack_restricted version 7 (txt part)" in p and "submitter_name" in p
               for p in rejected), rejected
    assert email == policy.render_acknowledgement("ack_restricted", policy.sample_context())
