"""Entra ID sign-in to the console (mailbot/web/oidc.py) against a real OpenID Connect
provider on loopback over HTTPS (mailbot/devtools/oidcserver.py, a trustme CA): the
console's Starlette app through TestClient, following each redirect by hand, the
browser's trip to the provider made with httpx against the provider itself."""

from __future__ import annotations

import html
import logging
import re
import secrets
import ssl
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mailbot import config as config_module
from mailbot import db
from mailbot.db.models import AuditEvent, User
from mailbot.devtools.oidcserver import TENANT, OidcServer, Person
from mailbot.errors import ConfigError
from mailbot.web import accounts
from mailbot.web.app import create_app

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "console-client-secret-17"
OFFICERS, MANAGERS, ADMINS = ("0f3c1c5e-officers", "5a1d7b2e-managers", "9e8f2a41-admins")
CALLBACK = "https://testserver/sign-in/entra/callback"
PASSWORD = "correct horse battery"
JANE = "Jane Smith <jane.smith@prison.gov.uk> (Entra ID)"


@pytest.fixture
def provider(ca):  # type: ignore[no-untyped-def]
    server = OidcServer(ca, CLIENT_ID, SECRET, CALLBACK).start()
    yield server
    server.stop()


@pytest.fixture
def bundle(ca, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "provider-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def oidc_table(server: OidcServer, bundle: str, **overrides) -> dict:  # type: ignore[no-untyped-def]
    return {"provider": "microsoft", "tenant_id": TENANT, "client_id": CLIENT_ID,
            "client_secret_env": "MAILBOT_TEST_OIDC_SECRET",
            "authority_host": server.authority_host, "redirect_base": "https://testserver",
            "groups": {OFFICERS: "officer", MANAGERS: "manager", ADMINS: "admin"},
            "ca_file": bundle, **overrides}


@pytest.fixture
def make_app(tmp_path, monkeypatch, provider, bundle):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MAILBOT_TEST_OIDC_SECRET", SECRET)
    engines = []

    def make(**overrides):  # type: ignore[no-untyped-def]
        directory = tmp_path / f"app{len(engines)}"
        directory.mkdir()
        config = config_module.from_dict({
            "prison": {"name": "HMP Exampletown"},
            "mailbox": {"host": "127.0.0.1", "port": 1, "username": "u",
                        "password_env": "UNUSED"},
            "smtp": {"host": "127.0.0.1", "port": 1, "from_address": "sc@prison.example"},
            "state": {"directory": str(directory)},
            "database": {"url": f"sqlite:///{directory / 'mailbot.sqlite3'}"},
            "web": {"oidc": oidc_table(provider, bundle, **overrides)},
        })
        engine = db.make_engine(config.database.url)
        engines.append(engine)
        db.upgrade(engine)
        sessions = db.session_factory(engine)
        with sessions() as session:
            accounts.add(session, "Admin Patel", "admin", PASSWORD, by="test")
            session.commit()
        application = create_app(config, sessions, session_secret="s" * 40)
        application.state.sessions = sessions
        return application

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app()


def browser_for(app) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def token(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def to_provider(browser: TestClient) -> str:
    """Press Sign in with Microsoft: the provider's authorization URL."""
    page = browser.get("/sign-in")
    assert "Sign in with Microsoft" in page.text
    start = browser.post("/sign-in/entra", data={"csrf_token": token(page.text)})
    assert start.status_code == 303, start.text
    return start.headers["location"]


def at_provider(location: str, bundle: str) -> str:
    """The browser at the provider, which signs in its chosen person: the callback URL."""
    answer = httpx.get(location, verify=ssl.create_default_context(cafile=bundle))
    assert answer.status_code == 302, answer.text
    back = answer.headers["location"]
    assert back.startswith(CALLBACK + "?")
    return back


def sign_in(browser: TestClient, bundle: str) -> httpx.Response:
    return browser.get(at_provider(to_provider(browser), bundle))


def events(app, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with app.state.sessions() as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)).scalars())


def jane(*groups: str) -> Person:
    return Person("Jane Smith", "jane.smith@prison.gov.uk", groups=list(groups))


# --- Signing in -------------------------------------------------------------------------------


def test_sign_in_lands_on_the_queue_with_the_highest_mapped_role(app, provider, bundle):
    person = provider.sign_in_as(jane(OFFICERS, MANAGERS, "unmapped-group"))
    browser = browser_for(app)
    location = to_provider(browser)
    asked = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert location.startswith(provider.issuer.removesuffix("/v2.0") + "/oauth2/v2.0/authorize")
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["client_id"] == CLIENT_ID and asked["redirect_uri"] == CALLBACK
    assert asked["response_type"] == "code" and asked["nonce"] and asked["state"]

    landed = browser.get(at_provider(location, bundle))
    assert landed.status_code == 200, landed.text
    assert 'http-equiv="refresh" content="0;url=/queue"' in landed.text
    queue = browser.get("/queue")
    assert queue.status_code == 200 and html.escape(JANE, quote=False) in queue.text
    assert browser.get("/audit").status_code == 200  # manager
    assert browser.get("/users").status_code == 403  # not admin
    # The code was exchanged with the PKCE verifier (the provider checks it) and the secret.
    [exchanged] = provider.token_requests
    assert exchanged["grant_type"] == "authorization_code"

    with app.state.sessions() as session:
        [user] = session.execute(select(User).where(User.source == "entra")).scalars()
        assert (user.name, user.role) == (JANE, "manager")
        assert user.external_id == f"entra:{person.oid}" and user.last_login_at is not None
    [signed_in] = events(app, "user_signed_in")
    assert signed_in.actor == JANE and signed_in.detail["source"] == "entra"

    # What she does is hers in the audit trail.
    csrf = token(queue.text)
    granted = browser.post("/consent/grant", data={
        "prisoner": "A1234BC", "contact": "fam@example.com", "scope": "wellbeing",
        "csrf_token": csrf})
    assert granted.status_code == 303
    [event] = events(app, "consent_granted")
    assert event.actor == JANE


def test_the_role_follows_the_groups_at_each_sign_in(app, provider, bundle):
    person = provider.sign_in_as(jane(OFFICERS))
    browser = browser_for(app)
    sign_in(browser, bundle)
    assert browser.get("/audit").status_code == 403
    person.groups = [ADMINS]
    browser = browser_for(app)
    sign_in(browser, bundle)
    assert browser.get("/users").status_code == 200
    with app.state.sessions() as session:
        assert [u.role for u in session.execute(
            select(User).where(User.source == "entra")).scalars()] == ["admin"]
    assert [e.detail["to"]["role"] for e in events(app, "user_updated_from_groups")] == ["admin"]


def test_a_generic_provider_by_its_issuer(make_app, provider, bundle):
    app = make_app(provider="generic", tenant_id=None, authority_host=None,
                   issuer=provider.issuer)
    provider.sign_in_as(jane(OFFICERS))
    browser = browser_for(app)
    assert sign_in(browser, bundle).status_code == 200
    assert browser.get("/queue").status_code == 200
    [signed_in] = events(app, "user_signed_in")
    assert signed_in.actor == "Jane Smith <jane.smith@prison.gov.uk> (OpenID Connect)"


# --- Refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("tamper", "reason"), [
    ({"aud": "someone-elses-app"}, "wrong audience"),
    ({"aud": [CLIENT_ID, "someone-elses-app"], "azp": "someone-elses-app"},
     "wrong audience (azp)"),
    ({"iss": "https://login.microsoftonline.com/another-tenant/v2.0"}, "wrong issuer"),
    ({"nonce": "not-the-one-sent"}, "wrong nonce"),
    ({"key": "other"}, "bad signature"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200,
      "nbf": int(time.time()) - 7200}, "expired"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"alg_none": True}, "signed with none"),
])
def test_a_bad_id_token_is_refused(app, provider, bundle, caplog, tamper, reason):
    caplog.set_level(logging.DEBUG)
    provider.sign_in_as(jane(ADMINS))
    if tamper.pop("alg_none", False):
        import jwt

        original = provider.id_token
        provider.id_token = lambda grant: jwt.encode(  # type: ignore[method-assign]
            jwt.decode(original(grant), options={"verify_signature": False}), None,
            algorithm="none")
    provider.tamper = tamper
    browser = browser_for(app)
    refused = sign_in(browser, bundle)
    assert refused.status_code == 400
    assert "You could not be signed in" in refused.text
    assert "choose Sign in with Microsoft again" in refused.text
    assert browser.get("/queue").status_code == 303  # no session
    [event] = events(app, "oidc_sign_in_refused")
    assert reason in event.detail["reason"], event.detail
    assert "eyJ" not in str(event.detail) and SECRET not in str(event.detail)
    with app.state.sessions() as session:
        assert session.execute(select(User).where(User.source == "entra")).first() is None
    # Nothing of a token in the log above DEBUG.
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG
                and ("eyJ" in r.getMessage() or SECRET in r.getMessage())]


def test_a_used_or_forged_state_is_refused(app, provider, bundle):
    provider.sign_in_as(jane(OFFICERS))
    browser = browser_for(app)
    back = at_provider(to_provider(browser), bundle)
    assert browser.get(back).status_code == 200
    # The same answer again (the state was used), with the cookie put back as it was.
    state = parse_qs(urlsplit(back).query)["state"][0]
    again = browser_for(app)
    again.cookies.set("mailbot_oidc_state", state, domain="testserver.local",
                      path="/sign-in/entra")
    replayed = again.get(back)
    assert replayed.status_code == 400 and "used already" in replayed.text
    # A state the console never made.
    forged = browser_for(app)
    made_up = secrets.token_urlsafe(32)
    forged.cookies.set("mailbot_oidc_state", made_up, domain="testserver.local",
                       path="/sign-in/entra")
    assert forged.get(f"{CALLBACK}?code=abc&state={made_up}").status_code == 400
    # A real state, but brought back to a browser that did not start it (login CSRF).
    started = browser_for(app)
    back = at_provider(to_provider(started), bundle)
    victim = browser_for(app)
    other = victim.get(back)
    assert other.status_code == 400 and "not started in this browser" in other.text
    assert victim.get("/queue").status_code == 303
    reasons = [e.detail["reason"] for e in events(app, "oidc_sign_in_refused")]
    assert reasons == ["unknown, used or expired state", "unknown, used or expired state",
                       "state not started in this browser"]


def test_someone_in_no_mapped_group_gets_no_access(app, provider, bundle):
    provider.sign_in_as(jane("some-other-group"))
    browser = browser_for(app)
    refused = sign_in(browser, bundle)
    assert refused.status_code == 403
    assert "not in any of the groups that give access" in refused.text
    assert "add you to the group" in refused.text
    assert browser.get("/queue").status_code == 303
    [event] = events(app, "oidc_sign_in_refused")
    assert event.detail["reason"] == "in no mapped group" and event.detail["who"] == JANE
    with app.state.sessions() as session:
        assert session.execute(select(User).where(User.source == "entra")).first() is None


def test_disabled_in_mailbot_is_refused_whatever_entra_says(app, provider, bundle):
    provider.sign_in_as(jane(OFFICERS))
    sign_in(browser_for(app), bundle)
    with app.state.sessions() as session:
        accounts.disable(session, JANE, by="Admin Patel")
        session.commit()
    browser = browser_for(app)
    refused = sign_in(browser, bundle)
    assert refused.status_code == 403 and "switched off" in refused.text
    assert browser.get("/queue").status_code == 303
    with app.state.sessions() as session:
        with pytest.raises(accounts.AccountError, match="Entra ID"):
            accounts.reset(session, JANE, "a new password for her", by="Admin Patel")


def test_local_sign_in_refused_when_switched_off(make_app, provider, bundle):
    app = make_app(local_accounts=False)
    browser = browser_for(app)
    page = browser.get("/sign-in")
    assert "Sign in with Microsoft" in page.text
    assert 'name="password"' not in page.text and 'name="name"' not in page.text
    answer = browser.post("/sign-in", data={"name": "Admin Patel", "password": PASSWORD,
                                            "csrf_token": token(page.text)})
    assert answer.status_code == 403 and "switched off" in answer.text
    assert browser.get("/queue").status_code == 303
    assert not events(app, "user_signed_in")
    # Beside the local accounts when they are on: both on the page.
    both = browser_for(make_app()).get("/sign-in").text
    assert "Sign in with Microsoft" in both and 'name="password"' in both


def test_the_start_needs_the_forms_token(app):
    browser = browser_for(app)
    browser.get("/sign-in")
    assert browser.post("/sign-in/entra", data={}).status_code == 403
    assert browser.post("/sign-in/entra", data={"csrf_token": "x" * 43}).status_code == 403


def test_a_wrong_client_secret_is_refused_without_saying_it(make_app, provider, bundle,
                                                            monkeypatch):
    app = make_app()
    monkeypatch.setenv("MAILBOT_TEST_OIDC_SECRET", "not-the-secret")
    provider.sign_in_as(jane(OFFICERS))
    browser = browser_for(app)
    refused = sign_in(browser, bundle)
    assert refused.status_code == 400 and "would not complete the sign-in" in refused.text
    [event] = events(app, "oidc_sign_in_refused")
    assert event.detail["reason"] == "token endpoint answered 401 invalid_client"
    assert "not-the-secret" not in str(event.detail)


# --- The [web.oidc] table ---------------------------------------------------------------------


def test_the_config_table_refuses_what_it_does_not_know(provider, bundle):
    base = {"prison": {"name": "x"},
            "mailbox": {"host": "h", "username": "u", "password_env": "X"},
            "smtp": {"host": "h", "from_address": "a@b.example"}}

    def load(**overrides):  # type: ignore[no-untyped-def]
        return config_module.from_dict({**base, "web": {
            "oidc": oidc_table(provider, bundle, **overrides)}})

    assert load().web.oidc.issuer_url == provider.issuer
    assert load(authority_host=None).web.oidc.issuer_url == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0")
    for overrides, words in (
        ({"colour": "blue"}, "[web.oidc] unknown key 'colour'"),
        ({"groups": {OFFICERS: "superuser"}}, "[web.oidc.groups]"),
        ({"groups": {}}, "groups maps at least one"),
        ({"client_secret_env": None}, "needs one of client_secret_file or client_secret_env"),
        ({"tenant_id": None}, "needs tenant_id"),
        ({"redirect_base": "http://mailbot.prison.example"}, "redirect_base must be an https"),
        ({"provider": "generic", "tenant_id": None, "authority_host": None}, "needs issuer"),
    ):
        with pytest.raises(ConfigError) as refused:
            load(**overrides)
        assert words in str(refused.value), (overrides, str(refused.value))


def test_the_sign_in_pages_csp_lets_the_form_go_on_to_the_provider(app, provider):
    csp = browser_for(app).get("/sign-in").headers["content-security-policy"]
    assert f"form-action 'self' {provider.authority_host}" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_a_provider_not_answering_is_said_and_audited(app, provider):
    browser = browser_for(app)
    page = browser.get("/sign-in")
    provider.stop()
    app.state.oidc._discovery = None  # as on a console started while it was down
    refused = browser.post("/sign-in/entra", data={"csrf_token": token(page.text)})
    assert refused.status_code == 502 and "could not be reached" in refused.text
    [event] = events(app, "oidc_sign_in_refused")
    assert event.detail["reason"].startswith("provider unreachable")
