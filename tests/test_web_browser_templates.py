"""The template editor in headless Chromium (Playwright, /usr/bin/chromium) against a
real `mailbot web` on a log filled by `run --once` from Dovecot (test_web_browser's
console): an admin edits the acknowledgement the log's concerns get, previews it with a
real concern's values, saves it and cannot approve it; a manager approves it and the next
concern's draft carries the new text; a rollback makes the shipped text live again; an
edit using a variable its consent level does not allow is refused with the reason. axe
runs on every page; MAILBOT_SCREENSHOTS=docs writes docs/console-template-editor.png."""

from __future__ import annotations

import os
import re
from datetime import timedelta

from sqlalchemy import select

from mailbot.db.models import AuditEvent, Contact, Draft, utcnow
from mailbot.replies import policy
from tests import test_web_browser
from tests.conftest import REPO
from tests.forms import portal_form
from tests.test_web_browser import Console

# test_web_browser's fixtures: the console's servers on a log run --once filled, and a tab
console = test_web_browser.console
page = test_web_browser.page

ADMIN = "Admin Patel"
MANAGER = "Manager Jones"
NEW_WORDS = "A new wording, approved in the console."


def sign_in(console: Console, page, name: str) -> None:  # type: ignore[no-untyped-def]
    if page.url.startswith(console.base_url) and "Sign out" in page.content():
        console.submit(page, "Sign out")
    console.sign_in(page, name)


def next_concern_draft(console: Console, number: str, name: str) -> Draft:
    """A new concern arrives and the daemon's pass drafts its acknowledgement."""
    console.dovecot.append(portal_form(
        name=name, email=f"{name.split()[0].lower()}@example.org",
        prisoner_name="Kit Example", prisoner_number=number, location="D wing",
        topic="Mental health", urgency="I am worried about their safety",
        text="He has been very low since his appeal was refused and is not eating."),
        internal_date=utcnow() - timedelta(minutes=5))
    console.run_once()
    with console.sessions() as session:
        contact = session.execute(select(Contact).where(Contact.prisoner_number == number)
                                  ).scalars().one()
        [draft] = contact.drafts
        session.expunge(draft)
        return draft


def test_edit_preview_approve_by_another_and_roll_back(console, page):
    code, output = console.cli("users", "add", ADMIN, "--role", "admin", "--password-file",
                               str(console.tmp_path / "password"))
    assert code == 0, output
    with console.sessions() as session:  # a concern of the log with its acknowledgement
        draft = session.execute(select(Draft).where(Draft.status == "draft")
                                .where(Draft.template.like("ack_%")).order_by(Draft.id)
                                ).scalars().first()
        template, reference = draft.template, draft.contact.reference
        family = draft.contact.submitter_name
    allowed = policy.allowed_variables(policy.entry_for("templates", template))
    greeting = "Dear {{ submitter_name }}," if "submitter_name" in allowed else "Hello,"
    new_text = (f"{greeting}\n\nThank you for writing to the safer custody team at "
                "{{ prison.name }}. Our reference is {{ reference }}. " + NEW_WORDS + "\n")
    edit = f"/templates/templates/{template}/edit"

    sign_in(console, page, ADMIN)
    console.go(page, "/templates")
    page.get_by_role("link", name=template, exact=True).click()
    page.wait_for_url(re.compile(f"/templates/templates/{template}$"))
    console.check(page)
    page.get_by_role("link", name="Edit the wording").click()
    page.wait_for_url(re.compile(f"{edit}$"))
    console.check(page)

    page.get_by_label("Text part", exact=True).fill(new_text)
    page.get_by_role("textbox", name=re.compile("^HTML part")).fill("")  # the text part only
    page.get_by_label("Fill the preview from").select_option(reference)
    page.get_by_label("What changed and why (kept with the version)").fill("plainer words")
    console.submit(page, "Preview", exact=True)
    preview = page.inner_text("#preview")
    assert f"Preview, filled from concern {reference}" in preview
    assert f"Our reference is {reference}." in page.inner_text("#preview-text")
    if "submitter_name" in allowed:
        assert f"Dear {family}," in page.inner_text("#preview-text")
    assert "Passes" in page.inner_text("#check-passed")
    assert "received_at" in page.inner_text("#variable-change")  # the edit drops it
    if os.environ.get("MAILBOT_SCREENSHOTS"):  # the editor, its check and preview
        page.set_viewport_size({"width": 1280, "height": 1180})
        page.screenshot(path=str(REPO / os.environ["MAILBOT_SCREENSHOTS"]
                                 / "console-template-editor.png"))
        page.set_viewport_size({"width": 1280, "height": 900})

    console.submit(page, "Save as a new version")
    assert re.search(f"/templates/templates/{template}/versions/1$", page.url)
    assert "It is not used until a manager" in page.inner_text(".govuk-notification-banner")
    assert "you wrote version 1" in page.inner_text("#refusal")
    console.submit(page, "Approve version 1")
    assert "you wrote version 1, so you may not approve it" in page.inner_text(
        ".govuk-error-summary")
    assert next_concern_draft(console, "A7001AA", "Ann Before").body_text.find(
        NEW_WORDS) == -1

    sign_in(console, page, MANAGER)
    console.go(page, f"/templates/templates/{template}/versions/1")
    assert "+Thank you for writing to the safer custody team" in page.inner_text(
        ".mailbot-diff")
    console.submit(page, "Approve version 1")
    assert "version 1 is live" in page.inner_text(".govuk-notification-banner")
    drafted = next_concern_draft(console, "A7002AA", "Bob After")
    assert NEW_WORDS in drafted.body_text and drafted.template == template

    console.go(page, f"/templates/templates/{template}/versions/0")
    console.submit(page, "Roll back to version 0")
    assert "rolled back to version 0" in page.inner_text(".govuk-notification-banner")
    assert "made live again (rollback) by Manager Jones" in page.inner_text("#approvals")
    assert NEW_WORDS not in next_concern_draft(console, "A7003AA", "Cat Rolled").body_text

    sign_in(console, page, ADMIN)
    console.go(page, edit)
    page.get_by_label("Text part", exact=True).fill(
        "Dear {{ submitter_name }}, about {{ prisoner_name }}.")
    console.submit(page, "Save as a new version")
    refusal = page.inner_text(".govuk-error-summary")
    assert "Version not saved" in refusal
    assert ("uses 'prisoner_name', which names or locates the prisoner; not allowed "
            f"where consent = {policy.entry_for('templates', template).consent}") in refusal
    assert "prisoner_name" in page.inner_text("#unknown")


def test_the_users_pages(console, page):
    """An admin adds a member of staff, changes their role and disables them."""
    code, output = console.cli("users", "add", ADMIN, "--role", "admin", "--password-file",
                               str(console.tmp_path / "password"))
    assert code == 0, output
    sign_in(console, page, ADMIN)
    console.go(page, "/users")
    form = page.locator("#add-user")
    form.get_by_label("Name").fill("Nia Newstarter")
    form.get_by_label("Role").select_option("officer")
    form.get_by_label("Password", exact=True).fill("a long enough password")
    form.get_by_label("The password again").fill("a long enough password")
    console.submit(page, "Add user")
    assert "User Nia Newstarter added (officer)" in page.inner_text(
        ".govuk-notification-banner")
    page.get_by_role("link", name="Nia Newstarter").click()
    page.wait_for_url(re.compile(r"/users/\d+$"))
    console.check(page)
    page.locator("#change-role").get_by_label("New role").select_option("manager")
    console.submit(page, "Change role")
    assert "manager" in page.inner_text("#person-role")
    console.submit(page, "Disable Nia Newstarter")
    assert "disabled" in page.inner_text("#person-state")
    with console.sessions() as session:
        actors = {(e.action, e.actor) for e in session.execute(select(AuditEvent).where(
            AuditEvent.action.in_(("user_added", "user_role_changed", "user_disabled"))
        )).scalars() if e.detail.get("user") == "Nia Newstarter"}
    assert actors == {("user_added", ADMIN), ("user_role_changed", ADMIN),
                      ("user_disabled", ADMIN)}
