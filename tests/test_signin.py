"""OAuth2 sign-in against real servers on loopback: a token provider over HTTPS with a
throwaway certificate authority (mailbot/devtools/tokenserver.py), Dovecot whose oauth2
passdb asks that provider about every token (XOAUTH2 and OAUTHBEARER), and an SMTP server
that takes only XOAUTH2. msal and google-auth run their real code against the provider
(as an Entra authority, and as a service account's token_uri)."""

from __future__ import annotations

import base64
import imaplib
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from mailbot import config as config_module
from mailbot.devtools.tokenserver import TENANT, ServiceAccount, TokenServer
from mailbot.errors import ConfigError, SignInError
from mailbot.mailbox import signin
from mailbot.mailbox.fetch import Mailbox
from mailbot.mailbox.idle import IdleWatcher
from mailbot.mailbox.smtp import SmtpConnection

MAILBOX = "safercustody@prison.example"  # the test Dovecot's user
SECRET = "client-secret-7f3a9"


# --- The servers (tests/conftest.py: ca, provider, oauth2_dovecot, oauth2_smtp) -------------


@pytest.fixture(autouse=True)
def fresh_tokens():
    signin.forget_tokens()
    yield
    signin.forget_tokens()


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("MAILBOT_TEST_CLIENT_SECRET", SECRET)
    return "MAILBOT_TEST_CLIENT_SECRET"


def generic(provider: TokenServer, secret_env: str, client_id: str = "mailbot") -> dict:
    return {"provider": "generic", "token_url": provider.token_url, "client_id": client_id,
            "client_secret_env": secret_env}


def microsoft(provider: TokenServer, secret_env: str, client_id: str = "mailbot-app") -> dict:
    return {"provider": "microsoft", "tenant_id": TENANT, "client_id": client_id,
            "client_secret_env": secret_env, "authority_host": provider.authority_host}


def configured(oauth2: dict, *, imap_port: int = 1, smtp_port: int = 1,
               smtp_oauth2: dict | None = None) -> config_module.Config:
    return config_module.from_dict({
        "prison": {"name": "HMP Exampletown"},
        "mailbox": {"host": "127.0.0.1", "port": imap_port, "security": "none",
                    "username": MAILBOX, "auth": "oauth2", "oauth2": oauth2,
                    "connect_attempts": 1, "timeout_seconds": 10},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "from_address": MAILBOX, "auth": "oauth2",
                 **({"oauth2": smtp_oauth2} if smtp_oauth2 else {})},
    })


# --- Keys for msal's certificate and Google's service account --------------------------------


def rsa_key_pem():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, pem


def self_signed_certificate(key) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot HMP Exampletown")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def service_account_file(tmp_path, provider: TokenServer, delegated: set[str],
                         client_id: str = "104857600000000000001"):
    from cryptography.hazmat.primitives import serialization

    key, pem = rsa_key_pem()
    email = "mailbot@hmp-exampletown.iam.gserviceaccount.com"
    provider.add_service_account(ServiceAccount(
        email=email, client_id=client_id, delegated_scopes=delegated,
        public_key_pem=key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)))
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "hmp-exampletown",
        "private_key_id": "0123456789abcdef", "private_key": pem.decode(),
        "client_email": email, "client_id": client_id,
        "token_uri": provider.google_token_uri,
    }))
    return path


# --- The configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(("oauth2", "message"), [
    ({"provider": "microsoft", "client_id": "c", "client_secret_env": "S"},
     "[mailbox.oauth2] provider 'microsoft' needs tenant_id"),
    ({"provider": "microsoft", "tenant_id": "t", "client_id": "c"},
     "[mailbox.oauth2] provider 'microsoft' needs one of client_secret_file, "
     "client_secret_env or certificate_file with private_key_file"),
    ({"provider": "microsoft", "tenant_id": "t", "client_id": "c", "certificate_file": "c"},
     "[mailbox.oauth2] certificate_file and private_key_file go together"),
    ({"provider": "google", "service_account_file": "f", "client_secret_env": "S"},
     "[mailbox.oauth2] provider 'google' does not take client_secret_env"),
    ({"provider": "generic", "token_url": "http://id.example/token", "client_id": "c",
      "client_secret_env": "S"},
     "[mailbox.oauth2] token_url must be an https:// URL (http:// only to a loopback "
     "address), not 'http://id.example/token'"),
    ({"provider": "generic", "token_url": "https://id.example/token", "client_id": "c"},
     "[mailbox.oauth2] provider 'generic' needs one of client_secret_file or "
     "client_secret_env"),
    ({"provider": "entra"},
     "[mailbox.oauth2] provider: Input should be 'microsoft', 'google' or 'generic', "
     "not 'entra'"),
])
def test_each_provider_names_the_keys_it_needs_and_refuses_the_others(oauth2, message):
    with pytest.raises(ConfigError) as raised:
        configured(oauth2)
    assert str(raised.value) == message


def test_oauth2_and_a_password_do_not_mix():
    raw = {"prison": {"name": "x"}, "smtp": {"host": "s", "from_address": "a@x"},
           "mailbox": {"host": "h", "username": "u", "auth": "oauth2", "password_env": "P",
                       "oauth2": {"provider": "google", "service_account_file": "f"}}}
    with pytest.raises(ConfigError, match=r"^\[mailbox\] auth = 'oauth2' takes no password"):
        config_module.from_dict(raw)
    raw["mailbox"]["auth"] = "password"
    with pytest.raises(ConfigError, match=r"set auth = 'oauth2' to use it"):
        config_module.from_dict(raw)
    raw["mailbox"] = {"host": "h", "username": "u", "password_env": "P"}
    raw["smtp"]["auth"] = "oauth2"
    with pytest.raises(ConfigError, match=r"needs \[smtp.oauth2\], or \[mailbox.oauth2\]"):
        config_module.from_dict(raw)


def test_https_is_not_needed_to_this_machine_itself():
    for url in ("http://127.0.0.1:8080/token", "http://localhost/token", "http://[::1]/t"):
        assert configured({"provider": "generic", "token_url": url, "client_id": "c",
                           "client_secret_env": "S"}).mailbox.oauth2.token_url == url


def test_smtp_signs_in_as_its_from_address_with_the_mailboxs_app_by_default():
    config = configured({"provider": "google", "service_account_file": "f"})
    assert config.smtp.login == MAILBOX
    assert config.smtp_oauth2 == config.mailbox.oauth2


def test_config_check_reads_the_oauth2_secrets_and_names_one_it_cannot(
    provider, tmp_path, capsys
):
    from mailbot.cli import main

    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    path = write_oauth2_config(tmp_path, provider, 1, 1)
    assert main(["--config", str(path), "config", "check"]) == 0
    assert capsys.readouterr().out == f"configuration OK: {path}\n"
    (tmp_path / "client-secret").unlink()
    assert main(["--config", str(path), "config", "check"]) == 2
    assert capsys.readouterr().err == (
        f"mailbot: [mailbox.oauth2] client_secret_file: cannot read "
        f"{tmp_path / 'client-secret'}: No such file or directory\n")


# --- Tokens: when they are renewed -----------------------------------------------------------


def test_a_token_is_renewed_five_minutes_before_expiry_or_a_quarter_of_its_life():
    hour = signin.AccessToken.lasting("eyJ0eXAi-secret", 3600, now=1000.0)
    assert (hour.expires_at, hour.renew_at) == (4600.0, 4300.0)
    short = signin.AccessToken.lasting("t", 8, now=1000.0)
    assert (short.expires_at, short.renew_at) == (1008.0, 1006.0)
    assert "eyJ0eXAi" not in repr(hour)


def test_the_sasl_strings_are_as_microsoft_google_and_rfc_7628_say():
    assert signin.xoauth2("a@b", "tok") == "user=a@b\x01auth=Bearer tok\x01\x01"
    assert signin.oauthbearer("a@b", "tok", "imap.b", 993) == (
        "n,a=a@b,\x01host=imap.b\x01port=993\x01auth=Bearer tok\x01\x01")


def test_a_cached_token_is_used_until_it_is_due_then_renewed(provider, secret_env):
    provider.lifetime_seconds = 2  # renewed at 1.5 s
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env))
    sign_in = signin.oauth2_sign_in("mailbox.oauth2", config.mailbox.oauth2, MAILBOX)
    first, fresh = sign_in.token()
    again, cached = sign_in.token()
    assert fresh and not cached and again is first
    time.sleep(1.6)
    renewed, fresh = sign_in.token()
    assert fresh and renewed.value != first.value
    assert len(provider.tokens_for("mailbot")) == 2


# --- The generic provider --------------------------------------------------------------------


def test_the_generic_provider_grants_client_credentials_over_https(provider, secret_env):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured({**generic(provider, secret_env), "scope": "imap smtp"})
    token = signin.SOURCES["generic"]("mailbox.oauth2", config.mailbox.oauth2, MAILBOX).fetch()
    assert provider.check(token.value, MAILBOX) is not None
    assert provider.token_url.startswith("https://")
    assert provider.token_requests == [{"provider": "generic", "client_id": "mailbot",
                                        "grant_type": "client_credentials",
                                        "scope": "imap smtp"}]


def test_a_wrong_client_secret_says_to_check_it(provider, oauth2_dovecot, secret_env):
    provider.add_app("mailbot", secret="another-secret", mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), imap_port=oauth2_dovecot.port)
    with pytest.raises(SignInError) as raised:
        Mailbox.connect(config.mailbox)
    assert str(raised.value) == (
        f"the token endpoint {provider.token_url} refused client_id mailbot (invalid_client): "
        "check client_id and the client secret (client_secret_file / client_secret_env)")
    assert raised.value.exit_code == 3


def test_an_unreachable_token_endpoint_is_said_plainly(oauth2_dovecot, secret_env):
    from mailbot.devtools.devservers import free_port

    url = f"http://127.0.0.1:{free_port()}/token"
    config = configured({"provider": "generic", "token_url": url, "client_id": "c",
                         "client_secret_env": secret_env}, imap_port=oauth2_dovecot.port)
    with pytest.raises(SignInError, match=r"^cannot reach the token endpoint http://127\.0\.0"
                                          r"\.1:\d+/token \(ConnectionRefusedError.*check "
                                          r"\[mailbox\.oauth2\] token_url"):
        Mailbox.connect(config.mailbox)


def test_a_missing_client_secret_file_is_a_configuration_error(provider, oauth2_dovecot,
                                                              tmp_path):
    config = configured({"provider": "generic", "token_url": provider.token_url,
                         "client_id": "c", "client_secret_file": str(tmp_path / "none")},
                        imap_port=oauth2_dovecot.port)
    with pytest.raises(ConfigError, match=r"^\[mailbox\.oauth2\] client_secret_file: cannot "
                                          r"read .*none: No such file"):
        Mailbox.connect(config.mailbox)


# --- Microsoft (msal against the provider as an Entra authority) ------------------------------


def fetch_microsoft(config: config_module.Config) -> signin.AccessToken:
    source = signin.SOURCES["microsoft"]("mailbox.oauth2", config.mailbox.oauth2, MAILBOX)
    return source.fetch()


def test_msal_gets_a_token_with_the_client_secret(provider, secret_env, caplog):
    caplog.set_level("DEBUG")  # msal, urllib3 and requests log at DEBUG too
    provider.add_app("mailbot-app", secret=SECRET, mailbox=MAILBOX)
    token = fetch_microsoft(configured(microsoft(provider, secret_env)))
    assert provider.check(token.value, MAILBOX) is not None
    assert provider.token_requests[-1]["scope"] == "https://outlook.office365.com/.default"
    assert_no_secret_logged(caplog, provider)


@pytest.mark.parametrize(("app", "tenant", "message"), [
    ({"secret": "the-old-secret"}, TENANT,
     "Microsoft Entra ID refused client_id mailbot-app (AADSTS7000215): the client secret is "
     "wrong: copy the secret's Value (not its Secret ID) from the app registration's "
     "Certificates & secrets into client_secret_file"),
    (None, TENANT,
     "Microsoft Entra ID refused client_id mailbot-app (AADSTS700016): no app with this "
     "client_id in the tenant: check client_id and tenant_id (the app registration's "
     "Overview), and that an administrator consented to it"),
])
def test_entras_refusals_say_what_to_fix(provider, secret_env, app, tenant, message):
    if app is not None:
        provider.add_app("mailbot-app", mailbox=MAILBOX, **app)
    with pytest.raises(SignInError) as raised:
        fetch_microsoft(configured({**microsoft(provider, secret_env), "tenant_id": tenant}))
    assert str(raised.value) == message
    assert SECRET not in str(raised.value) and "the-old-secret" not in str(raised.value)


def test_an_unknown_tenant_says_to_check_tenant_id(provider, secret_env):
    with pytest.raises(SignInError, match=r"^Microsoft Entra ID does not know the tenant "
                                          r"prison\.example at https://127.*check "
                                          r"\[mailbox\.oauth2\] tenant_id$"):
        fetch_microsoft(configured({**microsoft(provider, secret_env),
                                    "tenant_id": "prison.example"}))


def test_msal_signs_an_assertion_with_the_certificate_and_key(provider, tmp_path):
    key, key_pem = rsa_key_pem()
    certificate = self_signed_certificate(key)
    (tmp_path / "app.crt").write_bytes(certificate)
    (tmp_path / "app.key").write_bytes(key_pem)
    provider.add_app("mailbot-app", certificate_pem=certificate, mailbox=MAILBOX)
    oauth2 = {"provider": "microsoft", "tenant_id": TENANT, "client_id": "mailbot-app",
              "authority_host": provider.authority_host,
              "certificate_file": str(tmp_path / "app.crt"),
              "private_key_file": str(tmp_path / "app.key")}
    assert provider.check(fetch_microsoft(configured(oauth2)).value, MAILBOX)

    other, other_pem = rsa_key_pem()  # a key the app registration does not know
    (tmp_path / "app.key").write_bytes(other_pem)
    (tmp_path / "app.crt").write_bytes(self_signed_certificate(other))
    with pytest.raises(SignInError, match=r"\(AADSTS700027\): the certificate is not one of "
                                          r"the app's: upload certificate_file"):
        fetch_microsoft(configured(oauth2))


# --- Google (google-auth's service account signer, token_uri at the provider) ----------------


def google_config(path) -> config_module.Config:
    return configured({"provider": "google", "service_account_file": str(path)})


def fetch_google(config: config_module.Config) -> signin.AccessToken:
    return signin.SOURCES["google"]("mailbox.oauth2", config.mailbox.oauth2, MAILBOX).fetch()


def test_a_delegated_service_account_gets_a_token_for_the_mailbox(provider, tmp_path, caplog):
    caplog.set_level("DEBUG")
    path = service_account_file(tmp_path, provider, {"https://mail.google.com/"})
    provider.workspace_users.add(MAILBOX)
    token = fetch_google(google_config(path))
    issued = provider.check(token.value, MAILBOX)
    assert issued is not None and issued.scope == "https://mail.google.com/"
    assert 3500 < token.expires_at - time.time() <= 3600
    assert_no_secret_logged(caplog, provider)


def test_a_service_account_without_delegation_says_where_to_add_it(provider, tmp_path):
    path = service_account_file(tmp_path, provider, set())
    provider.workspace_users.add(MAILBOX)
    with pytest.raises(SignInError) as raised:
        fetch_google(google_config(path))
    assert str(raised.value).endswith(
        "the service account mailbot@hmp-exampletown.iam.gserviceaccount.com may not act for "
        "the domain's users: in the Admin console (Security, API controls, Domain-wide "
        "delegation) add its client ID 104857600000000000001 with the scope "
        "https://mail.google.com/")


def test_a_mailbox_google_does_not_know_says_to_check_the_address(provider, tmp_path):
    path = service_account_file(tmp_path, provider, {"https://mail.google.com/"})
    with pytest.raises(SignInError, match=f"{MAILBOX} is not a user of the Workspace domain"):
        fetch_google(google_config(path))


def test_a_file_that_is_no_service_account_key_is_a_configuration_error(tmp_path):
    path = tmp_path / "key.json"
    path.write_text('{"type": "service_account"}')
    with pytest.raises(ConfigError, match=r"^\[mailbox\.oauth2\] service_account_file: .* is "
                                          r"not a service account key"):
        fetch_google(google_config(path))


# --- IMAP: Dovecot's oauth2 passdb asks the provider about each token ------------------------


def test_imap_signs_in_with_xoauth2(provider, oauth2_dovecot, secret_env):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), imap_port=oauth2_dovecot.port)
    with Mailbox.connect(config.mailbox) as mailbox:
        mailbox.ensure_folders("Processed")
        assert mailbox.client.folder.exists("Processed")
    assert provider.introspections == 1
    assert "method=XOAUTH2" in (oauth2_dovecot.root / "dovecot.log").read_text()


def test_the_same_token_signs_in_with_oauthbearer(provider, oauth2_dovecot, secret_env):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), imap_port=oauth2_dovecot.port)
    token, _ = signin.oauth2_sign_in("mailbox.oauth2", config.mailbox.oauth2, MAILBOX).token()
    client = imaplib.IMAP4("127.0.0.1", oauth2_dovecot.port)
    response = signin.oauthbearer(MAILBOX, token.value, "127.0.0.1", oauth2_dovecot.port)
    typ, _ = client.authenticate("OAUTHBEARER", lambda _: response.encode())
    assert typ == "OK"
    client.logout()
    assert "method=OAUTHBEARER" in (oauth2_dovecot.root / "dovecot.log").read_text()


def test_a_revoked_token_is_renewed_once_and_the_sign_in_goes_on(
    provider, oauth2_dovecot, secret_env
):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), imap_port=oauth2_dovecot.port)
    Mailbox.connect(config.mailbox).close()
    provider.revoke_all()  # as Entra does when an administrator revokes the app's sessions
    Mailbox.connect(config.mailbox).close()
    assert len(provider.tokens_for("mailbot")) == 2
    assert provider.introspections == 3  # good, refused, the new one good


def test_an_app_without_mailbox_permission_gets_exchanges_checklist(
    provider, oauth2_dovecot, secret_env
):
    provider.add_app("mailbot-app", secret=SECRET, mailbox=None)  # no Add-MailboxPermission
    config = configured(microsoft(provider, secret_env), imap_port=oauth2_dovecot.port)
    with pytest.raises(SignInError) as raised:
        Mailbox.connect(config.mailbox)
    message = str(raised.value)
    assert message.startswith(f"the mailbox at 127.0.0.1:{oauth2_dovecot.port} refused the "
                              f"Microsoft 365 token for {MAILBOX} (")
    for step in ("IMAP.AccessAsApp", "New-ServicePrincipal", "Add-MailboxPermission",
                 "-ImapEnabled"):
        assert step in message
    assert "\n" not in message and raised.value.exit_code == 3
    assert len(provider.tokens_for("mailbot-app")) == 1  # a fresh token is not asked again


def test_run_once_exits_3_with_the_line_to_fix(provider, oauth2_dovecot, secret_env, tmp_path,
                                               capsys):
    from mailbot.cli import main

    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    path = write_oauth2_config(tmp_path, provider, oauth2_dovecot.port, 1)
    provider.apps["mailbot"].secret = "rotated-secret"  # the file still has the old one
    assert main(["--config", str(path), "run", "--once"]) == 3
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("mailbot: ")]
    assert errors == [f"mailbot: the token endpoint {provider.token_url} refused client_id "
                      "mailbot (invalid_client): check client_id and the client secret "
                      "(client_secret_file / client_secret_env)"]


# --- IDLE ---------------------------------------------------------------------------------------


def test_idle_signs_in_with_a_token_and_again_before_it_expires(
    provider, oauth2_dovecot, secret_env, caplog
):
    caplog.set_level("DEBUG")  # aioimaplib logs every line it sends at DEBUG
    provider.lifetime_seconds = 4  # renewed after 3 s
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), imap_port=oauth2_dovecot.port)
    states: list[str] = []
    woken = threading.Event()
    watcher = IdleWatcher(config.mailbox, "INBOX", woken.set,
                          on_state=lambda state, error: states.append(state))
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while states.count("connected") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert states.count("connected") >= 3, states
        assert "login_refused" not in states and "disconnected" not in states
        woken.clear()
        time.sleep(0.3)
        oauth2_dovecot.append(b"Subject: hello\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n")
        assert woken.wait(5)  # still watching after signing in again
    finally:
        watcher.stop()
    assert len(provider.tokens_for("mailbot")) >= 3
    assert [r.getMessage() for r in caplog.records].count("idle_signing_in_again") >= 2
    assert_no_secret_logged(caplog, provider)


def test_idle_reports_a_refused_token_as_a_refused_login(provider, oauth2_dovecot, secret_env):
    provider.add_app("mailbot-app", secret=SECRET, mailbox=None)
    config = configured(microsoft(provider, secret_env), imap_port=oauth2_dovecot.port)
    refused = threading.Event()
    errors: list[str | None] = []

    def on_state(state: str, error: str | None) -> None:
        if state == "login_refused":
            errors.append(error)
            refused.set()

    watcher = IdleWatcher(config.mailbox, "INBOX", lambda: None, on_state=on_state,
                          reconnect_max_seconds=30)
    watcher.start()
    try:
        assert refused.wait(15)
    finally:
        watcher.stop()
    assert "Add-MailboxPermission" in (errors[0] or "")


# --- SMTP -------------------------------------------------------------------------------------


def test_smtp_signs_in_with_xoauth2_and_sends(provider, oauth2_smtp, secret_env):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), smtp_port=oauth2_smtp.port)
    smtp = SmtpConnection(config)
    smtp.send(b"Subject: test\r\n\r\nhello\r\n", "family@example.org")
    smtp.close()
    assert [m["rcpt_tos"] for m in oauth2_smtp.messages] == [["family@example.org"]]


def test_smtp_renews_a_refused_token_once(provider, oauth2_smtp, secret_env):
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    config = configured(generic(provider, secret_env), smtp_port=oauth2_smtp.port)
    SmtpConnection(config).close()
    provider.revoke_all()
    SmtpConnection(config).close()
    assert len(provider.tokens_for("mailbot")) == 2
    assert oauth2_smtp.refusals == ["535 5.7.3 Authentication unsuccessful"]


def test_smtp_auth_disabled_for_the_mailbox_says_how_to_enable_it(
    provider, oauth2_smtp, secret_env
):
    provider.add_app("mailbot-app", secret=SECRET, mailbox=MAILBOX, smtp_auth_enabled=False)
    config = configured(microsoft(provider, secret_env), smtp_port=oauth2_smtp.port)
    with pytest.raises(SignInError) as raised:
        SmtpConnection(config)
    assert str(raised.value) == (
        f"the mail server at 127.0.0.1:{oauth2_smtp.port} says SMTP AUTH is disabled for "
        f"{MAILBOX} (535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
        "disabled for the Mailbox.): enable it for this mailbox only (Set-CASMailbox "
        f"-Identity {MAILBOX} -SmtpClientAuthenticationDisabled $false)")


def test_smtp_without_send_permission_gets_exchanges_checklist(
    provider, oauth2_smtp, secret_env
):
    provider.add_app("mailbot-app", secret=SECRET, mailbox="someone.else@prison.example")
    config = configured(microsoft(provider, secret_env), smtp_port=oauth2_smtp.port)
    with pytest.raises(SignInError, match=r"\(535 5\.7\.3 Authentication unsuccessful\): "
                                          r"check the app has SMTP\.SendAsApp"):
        SmtpConnection(config)


# --- The whole pass, and the daemon ---------------------------------------------------------


def write_oauth2_config(tmp_path, provider: TokenServer, imap_port: int, smtp_port: int,
                        extra: str = "", smtp_client: str | None = None):
    """A mailbot.toml for the OAuth2 servers (the generic provider; the client secret in a
    file beside it)."""
    from mailbot.devtools.devservers import config_text

    (tmp_path / "client-secret").write_text(
        (provider.apps["mailbot"].secret or "") + "\n")
    text = config_text(imap_port=imap_port, username=MAILBOX,
                       password_file=tmp_path / "unused", database_url=f"sqlite:///"
                       f"{tmp_path / 'mailbot.sqlite3'}", state_dir=tmp_path / "state",
                       smtp_port=smtp_port, extra=extra)
    oauth2 = (f'[mailbox.oauth2]\nprovider = "generic"\ntoken_url = "{provider.token_url}"\n'
              f'client_id = "mailbot"\nclient_secret_file = "{tmp_path / "client-secret"}"\n')
    text = text.replace(f'password_file = "{tmp_path / "unused"}"\n', 'auth = "oauth2"\n')
    text = text.replace("\n[smtp]\n", "\n" + oauth2 + "\n[smtp]\n")
    smtp = f'auth = "oauth2"\nusername = "{MAILBOX}"\n'
    if smtp_client:
        (tmp_path / "smtp-secret").write_text(provider.apps[smtp_client].secret or "")
        text = text.replace("\n[database]\n", (
            f'\n[smtp.oauth2]\nprovider = "generic"\ntoken_url = "{provider.token_url}"\n'
            f'client_id = "{smtp_client}"\nclient_secret_file = "{tmp_path / "smtp-secret"}"\n'
            "\n[database]\n"))
    text = text.replace('from_address = "safercustody.exampletown@prison.example"\n',
                        'from_address = "safercustody.exampletown@prison.example"\n' + smtp)
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


@pytest.fixture
def sessions_for():
    from mailbot import db

    engines = []

    def make(config):  # type: ignore[no-untyped-def]
        engine = db.make_engine(config.database.url)
        db.upgrade(engine)
        engines.append(engine)
        return db.session_factory(engine)

    yield make
    for engine in engines:
        engine.dispose()


def test_a_token_that_expires_between_passes_is_renewed_and_nothing_is_lost_or_repeated(
    provider, oauth2_dovecot, oauth2_smtp, tmp_path, sessions_for, caplog
):
    from mailbot.ingest.pipeline import Pipeline
    from tests.conftest import sample_bytes

    provider.lifetime_seconds = 2
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    path = write_oauth2_config(tmp_path, provider, oauth2_dovecot.port, oauth2_smtp.port)
    config = config_module.load(path)
    pipeline = Pipeline(config, sessions_for(config))
    caplog.set_level("DEBUG")

    oauth2_dovecot.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    first = pipeline.run_once()
    time.sleep(2.1)  # the token has expired
    oauth2_dovecot.append(sample_bytes("01-portal-safety-multipart.eml"))
    second = pipeline.run_once()
    third = pipeline.run_once()

    assert (first.fetched, second.fetched, third.fetched) == (1, 1, 0)
    assert len(provider.tokens_for("mailbot")) >= 2
    counts = oauth2_dovecot.folder_counts("INBOX", "Processed", "Sent", "Drafts")
    assert counts["INBOX"] == 0 and counts["Processed"] == 2
    assert counts["Drafts"] == 1  # the safety concern's acknowledgement, for staff
    sent = oauth2_smtp.parsed()
    ids = [m["Message-ID"] for m in sent]
    assert len(ids) == len(set(ids))  # nothing sent twice
    recipients = sorted(str(m["To"]) for m in sent)
    assert "sam.sample@example.net" in recipients  # the visits signposting reply
    assert counts["Sent"] == len(ids)  # each filed in Sent, once
    assert_no_secret_logged(caplog, provider)


def secret_values(provider: TokenServer, *secrets: str) -> set[str]:
    """What must never be logged or said: the client secrets, every token issued, and the
    tokens' SASL base64 forms."""
    forbidden = {SECRET, *secrets, *(t.value for t in provider.issued)}
    forbidden |= {base64.b64encode(signin.xoauth2(MAILBOX, t.value).encode()).decode()
                  for t in provider.issued}
    return forbidden


def assert_no_secret_logged(caplog, provider: TokenServer) -> None:
    """Neither the client secret nor any token, nor their SASL base64 forms, in any log
    line mailbot or its libraries wrote (the test servers' own loggers aside)."""
    forbidden = secret_values(provider)
    server_loggers = ("mail.log", "aiosmtpd")
    lines = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records
             if not r.name.startswith(server_loggers)]
    assert lines
    for line in lines:
        for value in forbidden:
            assert value not in line


def test_a_revoked_client_secret_is_one_outage_alert_and_shown_by_status(
    provider, oauth2_dovecot, oauth2_smtp, tmp_path, sessions_for, caplog
):
    from mailbot.service import health
    from mailbot.service.daemon import Daemon

    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    provider.add_app("mailbot-smtp", secret="smtp-secret-2b7c", mailbox=MAILBOX)
    path = write_oauth2_config(
        tmp_path, provider, oauth2_dovecot.port, oauth2_smtp.port, smtp_client="mailbot-smtp",
        extra='[alerts]\nsafety_team = ["safety.team@prison.example"]\noutage_minutes = 0\n')
    config = config_module.load(path)
    sessions = sessions_for(config)
    daemon = Daemon(config, sessions)
    caplog.set_level("DEBUG")
    provider.lifetime_seconds = 1
    daemon.poll()
    provider.apps["mailbot"].secret = "a-new-secret"  # the old one revoked in Entra
    time.sleep(1.1)  # the tokens expire: the next sign-in asks with the old secret
    daemon.poll()
    daemon.poll()

    alerts = [m for m in oauth2_smtp.parsed() if "unreachable" in str(m["Subject"])]
    assert len(alerts) == 1
    assert "refused client_id mailbot (invalid_client)" in alerts[0].get_content()
    report = health.status(config, sessions)
    assert not report.healthy
    assert f"mailbox sign-in failed: the token endpoint {provider.token_url} refused " \
           "client_id mailbot (invalid_client): check client_id and the client secret " \
           "(client_secret_file / client_secret_env)" in report.problems
    assert_no_secret_logged(caplog, provider)


def test_the_daemon_runs_on_through_token_expiry_without_losing_or_repeating_anything(
    provider, oauth2_dovecot, oauth2_smtp, tmp_path
):
    """`mailbot run` as systemd runs it, its tokens lasting 3 seconds: IDLE signs in again
    and the polls renew theirs, and each form is logged once and answered once."""
    from tests.forms import portal_form
    from tests.test_daemon import logged, start_daemon, stop, wait_for

    provider.lifetime_seconds = 3
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    path = write_oauth2_config(tmp_path, provider, oauth2_dovecot.port, oauth2_smtp.port)
    path.write_text(path.read_text().replace("poll_interval_seconds = 1",
                                             "poll_interval_seconds = 2"))
    database = str(tmp_path / "mailbot.sqlite3")
    daemon = start_daemon(path)
    try:
        for number in range(4):
            message_id = f"<visits-{number}@portal.example.org>"
            oauth2_dovecot.append(portal_form(message_id=message_id,
                                              email=f"family{number}@example.org"))
            assert wait_for(lambda m=message_id: logged(database, m.strip("<>")), 20)
            time.sleep(2)  # the token in use is soon due
        assert wait_for(lambda: len(oauth2_smtp.messages) >= 4, 20)
        time.sleep(2)
    finally:
        stderr = stop(daemon)
    assert daemon.returncode == 0, stderr
    assert stderr.count("event=message_recorded") == 4
    assert sorted(m["rcpt_tos"][0] for m in oauth2_smtp.messages) == [
        f"family{n}@example.org" for n in range(4)]
    assert "event=idle_signing_in_again" in stderr
    assert "login_refused" not in stderr and "poll_failed" not in stderr
    assert len(provider.tokens_for("mailbot")) >= 4
    assert SECRET not in stderr
    assert not any(t.value in stderr for t in provider.issued)


@pytest.fixture
def exchange_oauth2_dovecot(provider):  # type: ignore[no-untyped-def]
    """Dovecot taking OAuth2 tokens, its special-use folders named as Exchange names them."""
    from mailbot.devtools.devservers import Dovecot, dovecot_available
    from tests.test_mailbox_check import EXCHANGE

    if not dovecot_available():
        pytest.skip("Dovecot is not installed: run ./scripts/test, which installs it")
    server = Dovecot.start(oauth2_introspection_url=provider.introspection_url,
                           special_folders=EXCHANGE)
    yield server
    server.destroy()


def test_run_once_signed_in_with_oauth2_does_the_whole_pass_in_exchanges_folders(
    provider, exchange_oauth2_dovecot, oauth2_smtp, tmp_path, capsys
):
    """`mailbot -v run --once` as a timer runs it, signed in to IMAP and SMTP with OAuth2
    and no folder named: fetch, move, the concern's alert, the enquiry's reply, both filed
    in Sent Items, the draft in Drafts, an officer's response found in Sent Items; then the
    client secret is revoked: run --once and status exit 3 with the line to fix. Not one
    line written says a secret or a token, at DEBUG."""
    import email

    from mailbot.cli import main
    from tests.conftest import sample_bytes
    from tests.test_drafts import FAMILY, family_form
    from tests.test_signposting import SAFETY_TEAM, THREAT_TO_LIFE

    server, said = exchange_oauth2_dovecot, []
    provider.add_app("mailbot", secret=SECRET, mailbox=MAILBOX)
    path = write_oauth2_config(tmp_path, provider, server.port, oauth2_smtp.port,
                               extra=f'[alerts]\nsafety_team = ["{SAFETY_TEAM}"]\n')

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["-v", "--config", str(path), *args])
        out, err = capsys.readouterr()
        said.append(out + err)
        return code, out

    server.append(family_form(message_id="<form-1@portal.example.org>", text=THREAT_TO_LIFE))
    server.append(sample_bytes("02-portal-visits-enquiry-plain.eml"))
    assert run("run", "--once")[0] == 0
    assert server.folder_counts("INBOX", "Processed") == {"INBOX": 0, "Processed": 2}
    assert sorted(r for m in oauth2_smtp.messages for r in m["rcpt_tos"]) == [
        SAFETY_TEAM, "sam.sample@example.net"]  # the alert, the signposting reply
    with server.mailbox() as box:
        box.folder.set("Sent Items")
        filed = sorted(email.message_from_bytes(m.obj.as_bytes())["Message-ID"].strip()
                       for m in box.fetch(mark_seen=False))
        box.folder.set("Drafts")
        [draft] = list(box.fetch(mark_seen=False))
    assert filed == sorted(str(m["Message-ID"]).strip() for m in oauth2_smtp.parsed())
    assert server.folder_counts("Sent") == {"Sent": 0}  # nothing beside Exchange's own

    response = email.message.EmailMessage()
    response["From"] = "Officer Smith <safercustody.exampletown@prison.example>"
    response["To"], response["Subject"] = FAMILY, draft.subject
    response["Message-ID"] = "<outlook-1@prison.example>"
    response.set_content("Dear Jane, thank you for telling us. We have seen him. Officer Smith")
    server.append(response.as_bytes(), folder="Sent Items")
    assert run("run", "--once")[0] == 0
    code, out = run("drafts", "list", "--json", "--all")
    assert [d["status"] for d in json.loads(out)] == ["sent_by_staff"]
    assert len(oauth2_smtp.messages) == 2  # nothing sent twice

    provider.apps["mailbot"].secret = "a-new-secret"  # revoked in Entra; the file is stale
    provider.revoke_all()
    refused = (f"the token endpoint {provider.token_url} refused client_id mailbot "
               "(invalid_client): check client_id and the client secret "
               "(client_secret_file / client_secret_env)")
    code, _ = run("run", "--once")
    assert code == 3
    assert [line for line in said[-1].splitlines() if line.startswith("mailbot: ")] == [
        f"mailbot: {refused}"]
    code, out = run("status")
    assert code == 3
    assert f"UNHEALTHY: mailbox sign-in failed: {refused}" in out.splitlines()
    assert out.splitlines()[-1] == "status: unhealthy"
    forbidden = secret_values(provider, "a-new-secret")
    for text in said:
        for value in forbidden:
            assert value not in text


def test_status_exits_3_when_the_mailbox_refuses_the_password(dovecot, make_config, capsys):
    from mailbot.cli import main

    path, _ = make_config()
    (path.parent / "imap-password").write_text("not-the-password\n")
    capsys.readouterr()
    assert main(["--config", str(path), "status"]) == 3
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "sign-in failed" in line]
    assert line.startswith("UNHEALTHY: mailbox sign-in failed: ")
    assert "not-the-password" not in out
