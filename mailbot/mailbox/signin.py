"""The sign-in: decides how mailbot proves who it is to the mailbox (IMAP, IDLE) and to the
mail server (SMTP), and gets the access token when that is OAuth2.

    password   IMAP LOGIN / SMTP AUTH with the password from password_file or password_env
    oauth2     SASL XOAUTH2 with an access token from [mailbox.oauth2] ([smtp.oauth2]):
               microsoft  Entra ID app-only sign-in (client credentials) with msal, a
                          client secret or a certificate and its key
               google     a service account with domain-wide delegation acting as the
                          mailbox, with google-auth
               generic    any RFC 6749 token endpoint, client credentials

A token lives in memory only, one per token source and user, shared by every connection
the process opens (poll, IDLE, Sent copies, SMTP). It is renewed a quarter of its lifetime
(at most 5 minutes) before it expires, and once more when a server refuses one that came
from the cache (the provider may have revoked it). `valid_until` tells a long-lived
connection (IDLE) when to sign in again, since Exchange ends a session whose token has
expired. Every failure is a `SignInError` (exit code 3) whose one line says what to fix;
no token or secret is ever logged or put in a message.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import logging
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from mailbot.config import Config, MailboxSettings, OAuth2Settings
from mailbot.errors import ConfigError, MailboxLoginError, SignInError, describe
from mailbot.logs import event

if TYPE_CHECKING:
    import aioimaplib
    from imap_tools import BaseMailBox

log = logging.getLogger(__name__)

MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"
GOOGLE_SCOPE = "https://mail.google.com/"
# A token is renewed this long before it expires, or a quarter of its lifetime if shorter.
RENEW_BEFORE_SECONDS = 300.0
TOKEN_REQUEST_TIMEOUT_SECONDS = 30


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (Google's and Microsoft's IMAP/SMTP)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str, host: str, port: int) -> str:
    """The SASL OAUTHBEARER initial response (RFC 7628), for servers that want it."""
    return f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float  # time.time()
    renew_at: float

    @classmethod
    def lasting(cls, value: str, seconds: float, now: float | None = None) -> AccessToken:
        now = time.time() if now is None else now
        seconds = max(0.0, float(seconds))
        return cls(value, now + seconds, now + seconds - min(RENEW_BEFORE_SECONDS, seconds / 4))


# --- Where tokens come from ----------------------------------------------------------------


class TokenSource:
    """One provider's way to get a token for `user`; `section` names the table in messages."""

    name = "OAuth2"

    def __init__(self, section: str, settings: OAuth2Settings, user: str) -> None:
        self.section = section
        self.settings = settings
        self.user = user

    @property
    def scope(self) -> str:
        return self.settings.scope or ""

    def fetch(self) -> AccessToken:
        raise NotImplementedError

    def server_refused(self, server: str, protocol: str, reply: str) -> str:
        """What to fix when `server` refused a fresh token (one line)."""
        return (f"{server} refused the {self.name} access token for {self.user} "
                f"({reply}); check [{self.section}] scope, and that the provider lets "
                f"client_id {self.settings.client_id} use {protocol} on that mailbox")


class GenericTokenSource(TokenSource):
    """RFC 6749 section 4.4: client credentials, the client authenticated with HTTP Basic."""

    name = "OAuth2"

    def fetch(self) -> AccessToken:
        settings = self.settings
        url = settings.token_url or ""
        secret = settings.client_secret(self.section)
        basic = f"{quote(settings.client_id or '', safe='')}:{quote(secret, safe='')}"
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        request = urllib.request.Request(
            url, data=urlencode(form).encode("ascii"), method="POST",
            headers={"Authorization": "Basic " + base64.b64encode(basic.encode()).decode(),
                     "Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TOKEN_REQUEST_TIMEOUT_SECONDS,
                                        context=_tls_context(url)) as response:
                answer = _json(response.read())
        except urllib.error.HTTPError as exc:
            answer = _json(exc.read())
            raise SignInError(self._refusal(answer, exc.code)) from None
        except (OSError, ValueError) as exc:
            raise SignInError(
                f"cannot reach the token endpoint {_origin(url)} ({_reason(exc)}); check "
                f"[{self.section}] token_url, and that this machine may reach it"
            ) from None
        if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
            raise SignInError(self._refusal(answer, 200))
        return AccessToken.lasting(answer["access_token"], _seconds(answer.get("expires_in")))

    def _refusal(self, answer: dict[str, Any], status: int) -> str:
        error = str(answer.get("error") or f"HTTP {status}")
        fix = {
            "invalid_client": "check client_id and the client secret "
                              "(client_secret_file / client_secret_env)",
            "unauthorized_client": "the provider must allow client_id the "
                                   "client_credentials grant",
            "invalid_scope": f"check scope ({self.scope or 'none given'})",
            "unsupported_grant_type": "the endpoint does not offer client credentials; "
                                      "check token_url",
        }.get(error, f"check [{self.section}] token_url, client_id and scope")
        return (f"the token endpoint {_origin(self.settings.token_url or '')} refused "
                f"client_id {self.settings.client_id} ({error}): {fix}")


# Entra ID's AADSTS codes that a prison's administrator can act on, and what to do.
ENTRA_FIXES: dict[int, str] = {
    7000215: "the client secret is wrong: copy the secret's Value (not its Secret ID) from "
             "the app registration's Certificates & secrets into client_secret_file",
    7000222: "the client secret has expired: add a new one in the app registration's "
             "Certificates & secrets and put it in client_secret_file",
    700016: "no app with this client_id in the tenant: check client_id and tenant_id "
            "(the app registration's Overview), and that an administrator consented to it",
    90002: "no such tenant: check tenant_id (the Directory (tenant) ID in Entra ID)",
    900023: "tenant_id is neither a tenant ID nor a domain of one: check tenant_id",
    700027: "the certificate is not one of the app's: upload certificate_file to the app "
            "registration's Certificates & secrets, or check private_key_file",
    700024: "the signed client assertion is out of its valid time: check this "
            "machine's clock",
    7000112: "the app is disabled: enable sign-in in Enterprise applications, Properties",
    7000229: "the app has no service principal in the tenant: an administrator must "
             "grant admin consent for IMAP.AccessAsApp and SMTP.SendAsApp",
    65001: "admin consent is missing: grant admin consent for IMAP.AccessAsApp and "
           "SMTP.SendAsApp in the app registration's API permissions",
    70011: "the scope is not valid: leave scope unset (https://outlook.office365.com/.default)",
    1002012: "the scope is not valid: leave scope unset "
             "(https://outlook.office365.com/.default)",
    500011: "Office 365 Exchange Online is not in the tenant: check tenant_id",
}


class MicrosoftTokenSource(TokenSource):
    """Entra ID client credentials through msal; the app acts as itself, and Exchange
    decides which mailboxes it may open (its service principal's mailbox permissions)."""

    name = "Microsoft 365"

    @property
    def scope(self) -> str:
        return self.settings.scope or MICROSOFT_SCOPE

    def fetch(self) -> AccessToken:
        import msal
        import requests

        settings = self.settings
        authority = f"{(settings.authority_host or MICROSOFT_AUTHORITY_HOST).rstrip('/')}" \
                    f"/{settings.tenant_id}"
        try:
            # A new application each time: our cache is the one that decides renewal.
            app = msal.ConfidentialClientApplication(
                settings.client_id, client_credential=self._credential(), authority=authority,
                token_cache=msal.TokenCache(), instance_discovery=False,
                timeout=TOKEN_REQUEST_TIMEOUT_SECONDS,
            )
            answer = app.acquire_token_for_client(scopes=[self.scope])
        except requests.RequestException as exc:
            raise SignInError(
                f"cannot reach Microsoft Entra ID at {_origin(authority)} ({_reason(exc)}); "
                f"check that this machine may reach it (proxy, firewall)"
            ) from None
        except ValueError as exc:  # msal: the authority's metadata could not be had
            raise SignInError(
                f"Microsoft Entra ID does not know the tenant {settings.tenant_id} at "
                f"{_origin(authority)} ({_reason(exc)}); check [{self.section}] tenant_id"
            ) from None
        if "access_token" not in answer:
            raise SignInError(self._refusal(answer))
        return AccessToken.lasting(answer["access_token"], _seconds(answer.get("expires_in")))

    def _credential(self) -> str | dict[str, str]:
        settings = self.settings
        if settings.certificate_file and settings.private_key_file:
            return {"private_key": _read_file(self.section, "private_key_file",
                                              settings.private_key_file),
                    "public_certificate": _read_file(self.section, "certificate_file",
                                                     settings.certificate_file)}
        return settings.client_secret(self.section)

    def _refusal(self, answer: dict[str, Any]) -> str:
        codes = [code for code in answer.get("error_codes") or [] if isinstance(code, int)]
        error = str(answer.get("error") or "no token")
        for code in codes:
            if code in ENTRA_FIXES:
                return (f"Microsoft Entra ID refused client_id {self.settings.client_id} "
                        f"(AADSTS{code}): {ENTRA_FIXES[code]}")
        shown = f"AADSTS{codes[0]}" if codes else error
        return (f"Microsoft Entra ID refused client_id {self.settings.client_id} ({shown}, "
                f"{error}); check [{self.section}] tenant_id, client_id and the client "
                f"secret or certificate (docs/microsoft-365.md)")

    def server_refused(self, server: str, protocol: str, reply: str) -> str:
        if protocol == "SMTP":
            if "SmtpClientAuthentication" in reply or "5.7.139" in reply and "disabled" in reply:
                return (f"{server} says SMTP AUTH is disabled for {self.user} ({reply}): "
                        f"enable it for this mailbox only (Set-CASMailbox -Identity "
                        f"{self.user} -SmtpClientAuthenticationDisabled $false)")
            return (f"{server} refused the Microsoft 365 token for {self.user} ({reply}): "
                    f"check the app has SMTP.SendAsApp with admin consent, its service "
                    f"principal is registered in Exchange (New-ServicePrincipal) and may send "
                    f"as the mailbox (Add-MailboxPermission -AccessRights FullAccess)")
        return (f"{server} refused the Microsoft 365 token for {self.user} ({reply}): "
                f"check the app has IMAP.AccessAsApp with admin consent, its service "
                f"principal is registered in Exchange (New-ServicePrincipal) and has "
                f"FullAccess to the mailbox (Add-MailboxPermission), and IMAP is enabled for "
                f"it (Set-CASMailbox -ImapEnabled $true)")


class GoogleTokenSource(TokenSource):
    """A service account with domain-wide delegation acting as the mailbox (google-auth)."""

    name = "Google"

    @property
    def scope(self) -> str:
        return self.settings.scope or GOOGLE_SCOPE

    def fetch(self) -> AccessToken:
        import google.auth.exceptions
        import requests
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        path = Path(self.settings.service_account_file or "")
        try:
            info = json.loads(_read_file(self.section, "service_account_file", str(path)))
            credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[self.scope], subject=self.user
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"[{self.section}] service_account_file: {path} is not a service account "
                f"key ({exc.__class__.__name__}); download a JSON key for the service account"
            ) from None
        self._account = (info.get("client_email", "?"), info.get("client_id", "?"))
        try:
            with requests.Session() as session:
                credentials.refresh(Request(session))
        except google.auth.exceptions.RefreshError as exc:
            raise SignInError(self._refusal(exc)) from None
        except google.auth.exceptions.TransportError as exc:
            raise SignInError(
                f"cannot reach Google's token endpoint ({_reason(exc)}); check that this "
                f"machine may reach it (proxy, firewall)"
            ) from None
        expiry = credentials.expiry  # naive UTC
        seconds = ((expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
                   if expiry else 3600.0)
        return AccessToken.lasting(credentials.token, seconds)

    def _refusal(self, exc: Exception) -> str:
        answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(answer.get("error") or "")
        description = str(answer.get("error_description") or "")
        email, client_id = self._account
        if error == "unauthorized_client":
            fix = (f"the service account {email} may not act for the domain's users: in the "
                   f"Admin console (Security, API controls, Domain-wide delegation) add its "
                   f"client ID {client_id} with the scope {self.scope}")
        elif error == "invalid_grant" and "email" in description.lower():
            fix = (f"{self.user} is not a user of the Workspace domain: check the mailbox "
                   f"address ([mailbox] username)")
        elif error == "invalid_grant" and "signature" in description.lower():
            fix = ("the service account key was deleted or revoked: make a new key and put "
                   "it in service_account_file")
        elif error in ("invalid_client", "disabled_client"):
            fix = f"the service account {email} is disabled or deleted: check it in Google Cloud"
        else:
            fix = f"check [{self.section}] service_account_file and the delegation"
        shown = f"{error}: {description}" if description else (error or _reason(exc))
        return f"Google refused the service account for {self.user} ({shown[:160]}): {fix}"

    def server_refused(self, server: str, protocol: str, reply: str) -> str:
        return (f"{server} refused the Google token for {self.user} ({reply}): check the "
                f"delegation's scope is {GOOGLE_SCOPE} and that {protocol} is on for the user")


SOURCES: dict[str, type[TokenSource]] = {
    "generic": GenericTokenSource,
    "microsoft": MicrosoftTokenSource,
    "google": GoogleTokenSource,
}


class OAuth2SignIn:
    """The token for one token source and user: kept in memory, renewed before expiry,
    dropped when a server refuses it."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._token: AccessToken | None = None

    def token(self) -> tuple[AccessToken, bool]:
        """The token to use and whether it was fetched just now."""
        with self._lock:
            token = self._token
            if token is not None and time.time() < token.renew_at:
                return token, False
            self._token = token = self.source.fetch()
            event(log, logging.INFO, "oauth2_token_obtained", provider=self.source.name,
                  user=self.source.user,
                  expires_in_seconds=int(token.expires_at - time.time()))
            return token, True

    def forget(self, token: AccessToken) -> None:
        with self._lock:
            if self._token is token:
                self._token = None


_SIGN_INS: dict[tuple[str, OAuth2Settings, str], OAuth2SignIn] = {}
_SIGN_INS_LOCK = threading.Lock()


def oauth2_sign_in(section: str, settings: OAuth2Settings, user: str) -> OAuth2SignIn:
    """The process's one cache for this table's token source and user ([smtp] without a
    table of its own shares [mailbox.oauth2]'s, and so its token)."""
    with _SIGN_INS_LOCK:
        key = (section, settings, user)
        if key not in _SIGN_INS:
            _SIGN_INS[key] = OAuth2SignIn(SOURCES[settings.provider](section, settings, user))
        return _SIGN_INS[key]


def forget_tokens() -> None:
    """Drop every cached token (a test's fresh start; a reloaded configuration)."""
    with _SIGN_INS_LOCK:
        _SIGN_INS.clear()


def read_secrets(config: Config) -> None:
    """Read every secret the sign-in will need, as the service will (`config check`): a
    `ConfigError` names the first that cannot be read. Nothing is sent anywhere."""
    if config.mailbox.auth == "password":
        config.mailbox.password()
    if config.smtp.auth == "password":
        config.smtp.password()
    for section, oauth2 in (("mailbox.oauth2", config.mailbox.oauth2),
                            ("smtp.oauth2", config.smtp.oauth2)):
        if oauth2 is None:
            continue
        if oauth2.client_secret_file or oauth2.client_secret_env:
            oauth2.client_secret(section)
        for key in ("certificate_file", "private_key_file", "service_account_file"):
            path = getattr(oauth2, key)
            if path:
                _read_file(section, key, path)


# --- Signing in to the mailbox (IMAP) ------------------------------------------------------


class MailboxSignIn:
    """How to sign in to `[mailbox]`: made before connecting (a password that cannot be
    read is a configuration error, and no connection is tried)."""

    def __init__(self, settings: MailboxSettings) -> None:
        self.settings = settings
        self.server = f"the mailbox at {settings.host}:{settings.port}"
        self.password = settings.password() if settings.auth == "password" else None
        self.oauth2 = (
            oauth2_sign_in("mailbox.oauth2", settings.oauth2, settings.username)
            if settings.auth == "oauth2" and settings.oauth2 is not None else None
        )
        self.valid_until: float | None = None  # when the token used last needs renewing

    def _password_refused(self, reply: str = "") -> MailboxLoginError:
        settings = self.settings
        said = f" ({reply})" if reply else ""
        return MailboxLoginError(
            f"login refused for {settings.username} at {settings.host}:{settings.port}{said}; "
            f"check [mailbox] username and password_file/password_env"
        )

    def imap(self, client: BaseMailBox) -> None:
        """Sign in an imap-tools connection (no folder selected)."""
        from imap_tools.errors import MailboxLoginError as ImapToolsLoginError

        if self.oauth2 is None:
            try:
                client.login(self.settings.username, self.password or "", initial_folder=None)
            except (ImapToolsLoginError, imaplib.IMAP4.error) as exc:
                raise self._password_refused() from exc
            return
        replies: list[str] = []

        def attempt(token: str) -> bool:
            responder = _SaslResponder(xoauth2(self.settings.username, token))
            try:
                result = client.client.authenticate("XOAUTH2", responder)
            except imaplib.IMAP4.error as exc:
                replies.append(_server_text(exc))
                return False
            client.login_result = result
            return True

        token = _with_token(self.oauth2, attempt)
        if token is None:
            raise SignInError(self.oauth2.source.server_refused(
                self.server, "IMAP", replies[-1] if replies else "refused"))
        self.valid_until = token.renew_at

    async def imap_async(self, client: aioimaplib.IMAP4) -> None:
        """Sign in an aioimaplib connection (IDLE); the token is fetched off the loop."""
        if self.oauth2 is None:
            response = await client.login(self.settings.username, self.password or "")
            if response.result != "OK":
                raise self._password_refused(_server_text(response.lines[-1:]))
            return
        loop = asyncio.get_running_loop()
        replies: list[str] = []

        async def attempt(token: str) -> bool:
            response = await _authenticate_async(
                client, "XOAUTH2", xoauth2(self.settings.username, token))
            if response.result == "OK":
                return True
            replies.append(_server_text(response.lines[-1:]))
            return False

        sign_in = self.oauth2
        token, fresh = await loop.run_in_executor(None, sign_in.token)
        signed_in = await attempt(token.value)
        if not signed_in:
            sign_in.forget(token)
            if not fresh:
                _renewing(sign_in)
                token, _ = await loop.run_in_executor(None, sign_in.token)
                signed_in = await attempt(token.value)
                if not signed_in:
                    sign_in.forget(token)
        if not signed_in:
            raise SignInError(sign_in.source.server_refused(
                self.server, "IMAP", replies[-1] if replies else "refused"))
        self.valid_until = token.renew_at


def for_mailbox(settings: MailboxSettings) -> MailboxSignIn:
    return MailboxSignIn(settings)


# --- Signing in to the mail server (SMTP) --------------------------------------------------


def smtp_login(client: smtplib.SMTP, config: Config) -> None:
    """Sign in an SMTP connection as `[smtp]` says (nothing to do without a username)."""
    settings = config.smtp
    oauth2 = config.smtp_oauth2
    if oauth2 is None:
        password = settings.password()
        if settings.username and password is not None:
            client.login(settings.username, password)
        return
    section = "smtp.oauth2" if settings.oauth2 is not None else "mailbox.oauth2"
    user = settings.login
    sign_in = oauth2_sign_in(section, oauth2, user)
    replies: list[str] = []
    client.ehlo_or_helo_if_needed()  # smtplib's auth() takes a 503 "send EHLO first" as done

    def attempt(token: str) -> bool:
        initial = xoauth2(user, token)
        try:
            # On a refusal the server sends a 334 challenge (its error, as JSON); the
            # empty answer ends the exchange and brings the 535.
            client.auth("XOAUTH2", lambda challenge=None: "" if challenge else initial)
        except smtplib.SMTPAuthenticationError as exc:
            replies.append(f"{exc.smtp_code} {_server_text(exc.smtp_error)}")
            return False
        except smtplib.SMTPNotSupportedError:
            replies.append("no AUTH offered")
            return False
        return True

    if _with_token(sign_in, attempt) is None:
        raise SignInError(sign_in.source.server_refused(
            f"the mail server at {settings.host}:{settings.port}", "SMTP",
            replies[-1] if replies else "refused"))


# --- The parts ------------------------------------------------------------------------------


def _with_token(sign_in: OAuth2SignIn, attempt: Callable[[str], bool]) -> AccessToken | None:
    """Sign in with the cached token; if it is refused, once more with a new one."""
    token, fresh = sign_in.token()
    if attempt(token.value):
        return token
    sign_in.forget(token)
    if fresh:
        return None
    _renewing(sign_in)
    token, _ = sign_in.token()
    if attempt(token.value):
        return token
    sign_in.forget(token)
    return None


def _renewing(sign_in: OAuth2SignIn) -> None:
    event(log, logging.INFO, "oauth2_token_refused", provider=sign_in.source.name,
          user=sign_in.source.user, then="renewing once")


class _SaslResponder:
    """imaplib's AUTHENTICATE callback: the initial response, then an empty line to any
    challenge (XOAUTH2's error report), which ends the exchange with the server's NO."""

    def __init__(self, initial: str) -> None:
        self.initial = initial.encode("utf-8")
        self.asked = False

    def __call__(self, challenge: bytes) -> bytes:
        if self.asked:
            return b""
        self.asked = True
        return self.initial


async def _authenticate_async(client: aioimaplib.IMAP4, mechanism: str,
                              initial: str) -> aioimaplib.Response:
    """AUTHENTICATE on aioimaplib, as imaplib does it: the response to the server's first
    "+", then an empty line to any further one (XOAUTH2's error report). aioimaplib's own
    xoauth2() would wait for ever on that error challenge, and needs SASL-IR."""
    import aioimaplib

    protocol = client.protocol
    encoded = base64.b64encode(initial.encode("utf-8"))

    class Authenticate(aioimaplib.Command):
        answered = False

        def flush(self) -> None:  # a continuation: the server is waiting for us
            super().flush()
            protocol.transport.write((b"" if self.answered else encoded) + b"\r\n")
            self.answered = True

    command = Authenticate("AUTHENTICATE", protocol.new_tag(), mechanism, loop=protocol.loop)
    async with protocol.state_condition:
        response = await asyncio.wait_for(protocol.execute(command), client.timeout)
        if response.result == "OK":
            protocol.state = aioimaplib.AUTH
        protocol.state_condition.notify_all()
    return response


def _tls_context(url: str) -> ssl.SSLContext | None:
    return ssl.create_default_context() if url.startswith("https:") else None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 3600.0  # RFC 6749 makes expires_in optional; an hour is everyone's default


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return describe(reason, 120) if isinstance(reason, BaseException) else str(reason)
    return describe(exc, 120)


def _read_file(section: str, key: str, path: str) -> str:
    import os

    resolved = Path(os.path.expandvars(path))
    try:
        return resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"[{section}] {key}: cannot read {resolved}: {exc.strerror}") from None


def _server_text(value: Any) -> str:
    """A server's reply for a message: its own words, one line, short."""
    if isinstance(value, BaseException):
        value = value.args[0] if value.args else ""
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes | bytearray))
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return " ".join(str(value).split())[:160]

