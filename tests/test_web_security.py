"""The web console's guards, through Starlette's TestClient on a real SQLite database:
every route the application defines is refused without a session and with a role below
its own; a form without the session's CSRF token is refused; ten wrong passwords lock an
account; the audit trail names the member of staff signed in."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mailbot.db.models import AuditEvent, ConsentRecord
from mailbot.web import accounts
from mailbot.web.pages import ROUTES
from tests.web_support import PASSWORD, console_app
from tests.web_support import csrf_token as token

# The sign-in pages, and Entra ID's (tests/test_web_oidc.py signs in through them; here,
# that they are nothing without [web.oidc]).
PUBLIC = {("/sign-in", "GET"), ("/sign-in", "POST"), ("/sign-in/entra", "POST"),
          ("/sign-in/entra/callback", "GET")}
SAMPLE_PARAMS = {"reference": "SC-2026-00001", "draft_id": "1", "message_id": "1",
                 "what": "grant", "kind": "templates", "name": "ack_no_consent",
                 "number": "1", "user_id": "1"}


@pytest.fixture
def app(tmp_path):  # type: ignore[no-untyped-def]
    with console_app(tmp_path) as application:
        yield application


def client(app) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app, base_url="https://testserver", follow_redirects=False)



def signed_in(app, name: str) -> tuple[TestClient, str]:  # type: ignore[no-untyped-def]
    browser = client(app)
    csrf = token(browser.get("/sign-in").text)
    answer = browser.post("/sign-in", data={"name": name, "password": PASSWORD,
                                            "csrf_token": csrf})
    assert answer.status_code == 303, answer.text
    return browser, token(browser.get("/queue").text)


def every_route() -> list[tuple[str, str, str | None]]:
    found = []
    for path, endpoint, methods in ROUTES:
        assert hasattr(endpoint, "role"), f"{path} is not declared through page() or public"
        url = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)
        found += [(url, method, endpoint.role) for method in methods
                  if (path, method) not in PUBLIC]
    return found


def test_every_route_is_refused_without_a_session(app):
    browser = client(app)
    for url, method, _ in every_route():
        answer = browser.request(method, url, data={} if method == "POST" else None)
        if method == "GET":
            assert answer.status_code == 303, url
            assert answer.headers["location"].startswith("/sign-in"), url
        else:
            assert answer.status_code == 401, url


def test_every_route_is_refused_to_a_role_below_its_own(app):
    refused = 0
    for name, role in (("Officer Smith", "officer"), ("Manager Jones", "manager")):
        browser, csrf = signed_in(app, name)
        for url, method, needed in every_route():
            if accounts.allows(role, needed):
                continue
            answer = browser.request(method, url,
                                     data={"csrf_token": csrf} if method == "POST" else None)
            assert answer.status_code == 403, (name, url)
            refused += 1
    # /audit for an officer, /users for an officer and a manager, and the templates:
    # their pages and approvals for an officer, their editor for a manager too
    assert refused >= 3 + 7 + 2


def test_a_form_without_the_csrf_token_is_refused(app):
    browser, csrf = signed_in(app, "Officer Smith")
    form = {"prisoner": "A1234BC", "contact": "jane@example.com", "scope": "full"}
    assert browser.post("/consent/grant", data=form).status_code == 403
    assert browser.post("/consent/grant", data={**form, "csrf_token": "x" * 43}
                        ).status_code == 403
    with app.state.sessions() as session:
        assert session.execute(select(ConsentRecord)).first() is None
    assert browser.post("/consent/grant", data={**form, "csrf_token": csrf}).status_code == 303


def test_ten_wrong_passwords_lock_the_account(app):
    browser = client(app)
    csrf = token(browser.get("/sign-in").text)
    for _ in range(10):
        answer = browser.post("/sign-in", data={"name": "Officer Smith", "password": "wrong",
                                                "csrf_token": csrf})
        assert answer.status_code == 400
    locked = browser.post("/sign-in", data={"name": "Officer Smith", "password": PASSWORD,
                                            "csrf_token": csrf})
    assert locked.status_code == 400 and "locked" in locked.text
    with app.state.sessions() as session:
        actions = [e.action for e in session.execute(select(AuditEvent)).scalars()]
    assert "user_locked_out" in actions and "user_signed_in" not in actions


def test_the_audit_trail_names_the_signed_in_officer(app):
    browser, csrf = signed_in(app, "Officer Smith")
    answer = browser.post("/consent/grant", data={
        "prisoner": "A1234BC", "contact": "jane@example.com", "scope": "wellbeing",
        "by": "Someone Else", "csrf_token": csrf})
    assert answer.status_code == 303
    with app.state.sessions() as session:
        [granted] = session.execute(select(AuditEvent).where(
            AuditEvent.action == "consent_granted")).scalars()
    assert granted.actor == "Officer Smith"


def test_pages_carry_the_security_headers(app):
    answer = client(app).get("/sign-in")
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_disabled_officer_is_signed_out_at_the_next_request(app):
    browser, _ = signed_in(app, "Officer Smith")
    assert browser.get("/queue").status_code == 200
    with app.state.sessions() as session:
        accounts.disable(session, "Officer Smith", by="test")
        session.commit()
    assert browser.get("/queue").status_code == 303


def test_the_pages_render_on_a_seeded_log(app, tmp_path):
    """Every officer page, on the seeded communications log (tests/seed.py)."""
    from mailbot.db.models import Contact, Draft
    from tests.seed import seed_log

    web = app.state.web
    with app.state.sessions() as session:
        seed_log(session, web.config)
        session.commit()
        reference = session.execute(select(Contact.reference)).scalars().first()
        draft_id = session.execute(select(Draft.id)).scalars().first()
    browser, _ = signed_in(app, "Admin Patel")
    pages = ["/queue", "/queue?sort=time&urgency=urgent&category=self_harm&wing=A",
             f"/concerns/{reference}", f"/concerns/{reference}/raw", "/drafts",
             "/consent", "/quarantine", "/audit", "/users", "/users/1", "/templates",
             "/templates/templates/ack_no_consent", "/templates/templates/ack_no_consent/edit",
             f"/templates/templates/ack_no_consent/edit?concern={reference}",
             "/templates/templates/ack_no_consent/versions/0",
             "/templates/alerts/urgent/edit", "/templates/alerts/outage"]
    if draft_id:
        pages.append(f"/drafts/{draft_id}")
    for url in pages:
        answer = browser.get(url)
        assert answer.status_code == 200, (url, answer.text[-2000:])


def test_the_entra_pages_are_not_there_without_web_oidc(app):
    browser = client(app)
    csrf = token(browser.get("/sign-in").text)
    assert "Sign in with Microsoft" not in browser.get("/sign-in").text
    assert browser.post("/sign-in/entra", data={"csrf_token": csrf}).status_code == 404
    assert browser.get("/sign-in/entra/callback?code=x&state=y").status_code == 404
    assert browser.get("/queue").status_code == 303  # and no session came of them
