"""The console's template pages and Users page, over HTTP (Starlette's TestClient) on a
real SQLite database holding the seeded log (tests/seed.py): an admin edits an
acknowledgement, previews it with a real concern's values, saves it and cannot approve
it; a manager approves it and the next draft carries the new text; a rollback makes the
shipped text live again; an edit using a variable its consent level does not allow is
refused with the reason. Users are added, given a role, reset and disabled by an admin
through the same functions as `mailbot users`."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mailbot.db.models import AuditEvent, Contact, Draft, TemplateVersion, User
from mailbot.replies import consent, drafts, versions
from tests.web_support import PASSWORD, console_app
from tests.web_support import csrf_token as token

EDIT = "/templates/templates/ack_no_consent/edit"
NEW_TEXT = ("Dear {{ submitter_name }},\n\nWe have your message about a person in our care "
            "(our reference {{ reference }}). A new wording, approved in the console.\n\n"
            "Safer Custody Team, {{ prison.name }}\n")


@pytest.fixture
def app(tmp_path):  # type: ignore[no-untyped-def]
    with console_app(tmp_path, seed=True) as application:
        yield application



def signed_in(app, name: str) -> tuple[TestClient, str]:  # type: ignore[no-untyped-def]
    browser = TestClient(app, base_url="https://testserver", follow_redirects=False)
    csrf = token(browser.get("/sign-in").text)
    answer = browser.post("/sign-in", data={"name": name, "password": PASSWORD,
                                            "csrf_token": csrf})
    assert answer.status_code == 303, answer.text
    return browser, token(browser.get("/queue").text)


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def a_concern_without_consent(app) -> Contact:  # type: ignore[no-untyped-def]
    """A seeded concern that gets the no-consent acknowledgement, with a name on the
    form and an address to answer."""
    with app.state.sessions() as session:
        for contact in session.execute(select(Contact).where(
                Contact.related_contact_id.is_(None))
                .where(Contact.is_safer_custody.is_(True))
                .where(Contact.submitter_name != "")
                .order_by(Contact.id)).scalars():
            if drafts.choose_template(contact, consent.for_contact(session, contact)) \
                    == drafts.NO_CONSENT:
                session.expunge(contact)
                return contact
    raise AssertionError("the seeded log has no concern without consent")


def open_draft_for(app, reference: str) -> int:  # type: ignore[no-untyped-def]
    """A draft for the concern, written now by the function the daemon calls."""
    with app.state.sessions() as session:
        contact = session.execute(select(Contact).where(Contact.reference == reference)
                                  ).scalar_one()
        for old in contact.drafts:
            if old.status == drafts.Status.DRAFT:
                old.status = drafts.Status.SUPERSEDED
        draft = drafts.create_draft(session, app.state.web.config, contact, actor="test")
        session.commit()
        return draft.id


def draft_text(app, draft_id: int) -> str:  # type: ignore[no-untyped-def]
    with app.state.sessions() as session:
        return session.get(Draft, draft_id).body_text


def save(browser: TestClient, csrf: str, text: str, **extra: str):  # type: ignore[no-untyped-def]
    return browser.post(EDIT, data={"csrf_token": csrf, "action": "save",
                                    "subject": "Your message to us [{{ reference }}]",
                                    "text": text, "html": "", "note": "plainer words",
                                    "concern": "example", **extra})


def test_edit_preview_save_approve_draft_and_roll_back(app):
    contact = a_concern_without_consent(app)
    before = open_draft_for(app, contact.reference)
    assert "We take every concern seriously" in draft_text(app, before)

    admin, csrf = signed_in(app, "Admin Patel")
    listing = admin.get("/templates")
    assert listing.status_code == 200
    assert "ack_no_consent" in listing.text and "0 (shipped)" in listing.text

    # The editor, previewed with a real concern's values (no JavaScript: a form post)
    editor = admin.get(EDIT)
    assert editor.status_code == 200 and "Passes" in editor.text
    with app.state.sessions() as session:
        from mailbot.replies import policy

        shipped_html = versions.live_wording(
            session, policy.entry_for("templates", "ack_no_consent")).part("html")
    preview = admin.post(EDIT, data={"csrf_token": csrf, "action": "preview",
                                     "subject": "Your message to us [{{ reference }}]",
                                     "text": NEW_TEXT, "html": shipped_html,
                                     "concern": contact.reference})
    assert preview.status_code == 200
    shown = text_of(preview.text)
    assert f"Preview, filled from concern {contact.reference}" in shown
    assert f"Dear {contact.submitter_name}," in shown
    assert f"(our reference {contact.reference})" in shown
    # the HTML part, left as it was, would say the old words
    assert "The text part changed but the HTML part did not" in shown
    text_only = admin.post(EDIT, data={"csrf_token": csrf, "action": "preview",
                                       "subject": "Your message to us [{{ reference }}]",
                                       "text": NEW_TEXT, "html": "",
                                       "concern": contact.reference})
    shown = text_of(text_only.text)
    assert "HTML part did not" not in shown and "No HTML part" in shown
    # without the HTML part the edit uses received_at nowhere, and the page says so
    assert "removes received_at" in shown
    with app.state.sessions() as session:
        assert session.execute(select(TemplateVersion)).first() is None  # a preview saves nothing

    # Saving makes version 1, which is not live yet
    saved = save(admin, csrf, NEW_TEXT)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "/templates/templates/ack_no_consent/versions/1"
    page = admin.get(saved.headers["location"])
    shown = text_of(page.text)
    assert "Written by Admin Patel" in shown and "Approve version 1" in shown
    assert "+We have your message about a person in our care" in shown  # the diff
    assert "you wrote version 1, so you may not approve it" in shown
    assert "We take every concern seriously" in draft_text(app, open_draft_for(
        app, contact.reference))

    # The author cannot approve it, even as an admin
    refused = admin.post("/templates/templates/ack_no_consent/versions/1/approve",
                         data={"csrf_token": csrf})
    assert refused.status_code == 400
    assert "you wrote version 1, so you may not approve it" in text_of(refused.text)
    with app.state.sessions() as session:
        assert versions.live_number(session, "templates", "ack_no_consent") == 0

    # A manager approves it: the next draft carries the new text
    manager, manager_csrf = signed_in(app, "Manager Jones")
    approved = manager.post("/templates/templates/ack_no_consent/versions/1/approve",
                            data={"csrf_token": manager_csrf})
    assert approved.status_code == 303, approved.text
    assert "version 1" in text_of(manager.get("/templates").text)
    after = open_draft_for(app, contact.reference)
    assert "A new wording, approved in the console." in draft_text(app, after)
    assert f"Dear {contact.submitter_name}," in draft_text(app, after)
    # ... and so does a redraft from the console
    redraft = admin.post(f"/drafts/{after}/redraft", data={"csrf_token": csrf})
    assert redraft.status_code == 303
    newest = int(redraft.headers["location"].rsplit("/", 1)[1])
    assert "A new wording, approved in the console." in draft_text(app, newest)

    # A rollback to the shipped text makes it live again in one step
    rolled = manager.post("/templates/templates/ack_no_consent/versions/0/rollback",
                          data={"csrf_token": manager_csrf})
    assert rolled.status_code == 303, rolled.text
    assert "We take every concern seriously" in draft_text(app, open_draft_for(
        app, contact.reference))
    history = text_of(manager.get("/templates/templates/ack_no_consent").text)
    assert "version 0 made live again (rollback) by Manager Jones" in history
    assert "version 1 approved by Manager Jones" in history

    # ... and back to version 1, as an approval of it
    again = manager.post("/templates/templates/ack_no_consent/versions/1/approve",
                         data={"csrf_token": manager_csrf})
    assert again.status_code == 303
    assert "A new wording" in draft_text(app, open_draft_for(app, contact.reference))

    with app.state.sessions() as session:
        events = [(e.actor, e.action) for e in session.execute(
            select(AuditEvent).where(AuditEvent.action.like("template_%"))
            .order_by(AuditEvent.id)).scalars()]
    trail = text_of(manager.get("/audit").text)
    assert "template version approved: ack_no_consent version 1" in trail
    assert "template rolled back: ack_no_consent version 0" in trail
    assert events == [("Admin Patel", "template_version_saved"),
                      ("Manager Jones", "template_version_approved"),
                      ("Manager Jones", "template_rolled_back"),
                      ("Manager Jones", "template_version_approved")]


def test_an_edit_using_a_variable_its_consent_does_not_allow_is_refused(app):
    admin, csrf = signed_in(app, "Admin Patel")
    answer = save(admin, csrf, "Dear {{ submitter_name }}, about {{ prisoner_name }}.")
    assert answer.status_code == 400
    shown = text_of(answer.text)
    assert "Version not saved" in shown
    assert ("uses 'prisoner_name', which names or locates the prisoner; not allowed "
            "where consent = none") in shown
    assert re.search(r"Unknown or not allowed\s+prisoner_name", shown)
    assert "adds prisoner_name" in shown
    unknown = save(admin, csrf, "Dear {{ submiter_name }}")
    assert unknown.status_code == 400
    assert "uses 'submiter_name', which templates/replies/policy.toml does not declare" \
        in text_of(unknown.text)
    # the consented template may name the prisoner
    consented = admin.post("/templates/templates/ack_consent/edit", data={
        "csrf_token": csrf, "action": "save", "subject": "About {{ prisoner_name }}",
        "text": "Dear {{ submitter_name }}, {{ prisoner_name }} is being supported.",
        "html": ""})
    assert consented.status_code == 303, text_of(consented.text)[-800:]
    with app.state.sessions() as session:
        assert [v.name for v in session.execute(select(TemplateVersion)).scalars()] \
            == ["ack_consent"]


def test_an_unchanged_save_and_a_file_only_alert_are_refused(app):
    admin, csrf = signed_in(app, "Admin Patel")
    with app.state.sessions() as session:
        from mailbot.replies import policy

        entry = policy.entry_for("templates", "ack_no_consent")
        live = versions.live_wording(session, entry)
    same = admin.post(EDIT, data={"csrf_token": csrf, "action": "save",
                                  "subject": live.part("subject"), "text": live.part("txt"),
                                  "html": live.part("html") or ""})
    assert same.status_code == 400 and "nothing changed" in text_of(same.text)
    outage = admin.post("/templates/alerts/outage/edit", data={
        "csrf_token": csrf, "action": "save", "subject": "down", "text": "{{ channel }}"})
    assert outage.status_code == 400
    assert "always rendered from its file" in text_of(outage.text)


def test_a_manager_sees_templates_but_cannot_edit_and_an_officer_neither(app):
    manager, manager_csrf = signed_in(app, "Manager Jones")
    assert manager.get("/templates/templates/ack_no_consent").status_code == 200
    assert manager.get(EDIT).status_code == 403
    assert manager.post(EDIT, data={"csrf_token": manager_csrf, "action": "save",
                                    "subject": "x", "text": "y"}).status_code == 403
    officer, _ = signed_in(app, "Officer Smith")
    assert officer.get("/templates").status_code == 403
    assert "/templates" not in officer.get("/queue").text


def test_users_are_kept_in_the_browser_by_the_same_rules(app):
    admin, csrf = signed_in(app, "Admin Patel")
    short = admin.post("/users/add", data={"csrf_token": csrf, "name": "New Officer",
                                           "role": "officer", "password": "short",
                                           "confirm": "short"})
    assert short.status_code == 400
    assert "a password needs at least 12 characters" in text_of(short.text)
    added = admin.post("/users/add", data={"csrf_token": csrf, "name": "New Officer",
                                           "role": "officer", "password": PASSWORD,
                                           "confirm": PASSWORD})
    assert added.status_code == 303
    twice = admin.post("/users/add", data={"csrf_token": csrf, "name": "New Officer",
                                           "role": "officer", "password": PASSWORD,
                                           "confirm": PASSWORD})
    assert "already exists" in text_of(twice.text)
    with app.state.sessions() as session:
        new_id = session.execute(select(User.id).where(User.name == "New Officer")).scalar()
        admin_id = session.execute(select(User.id).where(User.name == "Admin Patel")).scalar()
    listing = text_of(admin.get("/users").text)
    assert "New Officer" in listing and "never" in listing

    officer, _ = signed_in(app, "New Officer")
    assert officer.get("/templates").status_code == 403
    promoted = admin.post(f"/users/{new_id}/role", data={"csrf_token": csrf,
                                                         "role": "manager"})
    assert promoted.status_code == 303
    assert officer.get("/templates").status_code == 200  # the next request has the role
    last = text_of(admin.get(f"/users/{new_id}").text)
    assert "Last signed in" in last and "never" not in last.split("Last signed in")[1][:40]

    mismatch = admin.post(f"/users/{new_id}/reset", data={
        "csrf_token": csrf, "password": "another long password", "confirm": "different"})
    assert mismatch.status_code == 400 and "not the same" in text_of(mismatch.text)
    reset = admin.post(f"/users/{new_id}/reset", data={
        "csrf_token": csrf, "password": "another long password",
        "confirm": "another long password"})
    assert reset.status_code == 303
    assert officer.get("/queue").status_code == 303  # a reset ends their sessions

    disabled = admin.post(f"/users/{new_id}/disable", data={"csrf_token": csrf})
    assert disabled.status_code == 303
    assert "disabled" in text_of(admin.get(f"/users/{new_id}").text)
    alone = admin.post(f"/users/{admin_id}/role", data={"csrf_token": csrf,
                                                        "role": "officer"})
    assert alone.status_code == 400 and "only enabled admin" in text_of(alone.text)

    with app.state.sessions() as session:
        events = [(e.actor, e.action, e.detail.get("user")) for e in session.execute(
            select(AuditEvent).where(AuditEvent.action.like("user_%"))
            .where(AuditEvent.action != "user_signed_in").order_by(AuditEvent.id)).scalars()
            if e.actor == "Admin Patel"]
    assert events == [("Admin Patel", "user_added", "New Officer"),
                      ("Admin Patel", "user_role_changed", "New Officer"),
                      ("Admin Patel", "user_password_reset", "New Officer"),
                      ("Admin Patel", "user_disabled", "New Officer")]
