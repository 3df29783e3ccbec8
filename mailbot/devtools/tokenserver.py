"""A throwaway OAuth2 provider for the tests: token endpoints shaped like Entra ID's,
Google's and a plain RFC 6749 one, and the token introspection (RFC 7662) that Dovecot's
`oauth2` passdb asks whether a token is good.

It issues short-lived random tokens (`lifetime_seconds`), answers errors the way each
provider does (Entra's AADSTS codes, Google's `unauthorized_client`, RFC 6749's
`invalid_client`), can revoke every token it gave, and counts what it was asked. Served
over HTTP on loopback, and over HTTPS too when given a certificate authority (trustme).
Plus an SMTP server (aiosmtpd) that accepts only AUTH XOAUTH2 with one of its tokens.
Nothing here is used by the daemon.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from mailbot.devtools.devservers import SmtpSink, _SinkHandler, free_port

TENANT = "5f0c6a31-7d1e-4c0a-9b7e-000000000015"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class App:
    """A client of the provider. `mailbox` is the one mailbox it may open (Exchange's
    mailbox permission for its service principal); None: none at all."""

    client_id: str
    secret: str | None = None
    certificate_pem: bytes | None = None  # Entra: assertions signed by this cert's key
    mailbox: str | None = None
    smtp_auth_enabled: bool = True  # Exchange's SmtpClientAuthenticationDisabled, inverted


@dataclass
class ServiceAccount:
    """A Google service account: its public key, and the scopes its domain-wide
    delegation allows (none until an administrator adds them)."""

    email: str
    client_id: str
    public_key_pem: bytes
    delegated_scopes: set[str] = field(default_factory=set)


@dataclass
class Issued:
    value: str = field(repr=False)
    client_id: str
    mailbox: str | None
    scope: str
    expires_at: float
    revoked: bool = False

    def good_for(self, user: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return (not self.revoked and now < self.expires_at and self.mailbox is not None
                and self.mailbox.lower() == user.lower())


class TokenServer:
    """The provider: `start()` it, register apps, service accounts and users, point
    mailbot at `token_url`, `authority_host` or a service account's `token_uri`."""

    def __init__(self, lifetime_seconds: float = 3600, ca: Any = None) -> None:
        self.lifetime_seconds = lifetime_seconds
        self.ca = ca  # a trustme.CA: also serve HTTPS with a certificate it signed
        self.apps: dict[str, App] = {}
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.workspace_users: set[str] = set()
        self.issued: list[Issued] = []
        self.token_requests: list[dict[str, str]] = []  # what was asked, secrets left out
        self.introspections = 0
        self.lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self.port = 0
        self.tls_port = 0

    # Running it.

    def start(self) -> TokenServer:
        self.port = self._serve(None)
        if self.ca is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            self.tls_port = self._serve(context)
        return self

    def _serve(self, context: ssl.SSLContext | None) -> int:
        port = free_port()
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        server.daemon_threads = True
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name="token-server", daemon=True).start()
        self._servers.append(server)
        return port

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def base(self, tls: bool = True) -> str:
        if tls and self.tls_port:
            return f"https://127.0.0.1:{self.tls_port}"
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return self.base() + "/oauth2/token"

    @property
    def authority_host(self) -> str:
        return self.base()

    @property
    def google_token_uri(self) -> str:
        return self.base() + "/google/token"

    @property
    def introspection_url(self) -> str:
        """Plain HTTP: what Dovecot's oauth2 passdb asks (it is on this machine too)."""
        return self.base(tls=False) + "/introspect"

    # What tests do to it.

    def add_app(self, client_id: str, **kwargs: Any) -> App:
        app = self.apps[client_id] = App(client_id, **kwargs)
        return app

    def add_service_account(self, account: ServiceAccount) -> None:
        self.service_accounts[account.email] = account

    def revoke_all(self) -> None:
        with self.lock:
            for token in self.issued:
                token.revoked = True

    def tokens_for(self, client_id: str) -> list[Issued]:
        with self.lock:
            return [t for t in self.issued if t.client_id == client_id]

    def check(self, token: str, user: str) -> Issued | None:
        """The token, if it is good for `user`'s mailbox now."""
        with self.lock:
            for issued in self.issued:
                if secrets.compare_digest(issued.value, token):
                    return issued if issued.good_for(user) else None
        return None

    def _issue(self, client_id: str, mailbox: str | None, scope: str) -> dict[str, Any]:
        value = secrets.token_urlsafe(32)
        with self.lock:
            self.issued.append(Issued(value, client_id, mailbox, scope,
                                      time.time() + self.lifetime_seconds))
        return {"token_type": "Bearer", "access_token": value,
                "expires_in": int(self.lifetime_seconds) if self.lifetime_seconds >= 1
                else self.lifetime_seconds}

    # The endpoints: each returns (HTTP status, JSON body).

    def openid_configuration(self, tenant: str) -> tuple[int, dict[str, Any]]:
        if tenant != TENANT:
            return 400, _entra_error("invalid_tenant", 90002,
                                     f"Tenant '{tenant}' not found.")
        base = f"{self.base()}/{tenant}"
        return 200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                     "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                     "issuer": f"{base}/v2.0", "device_authorization_endpoint":
                     f"{base}/oauth2/v2.0/devicecode"}

    def entra_token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id", "")
        self._asked("microsoft", form)
        if tenant != TENANT:
            return 400, _entra_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        app = self.apps.get(client_id)
        if app is None:
            return 400, _entra_error(
                "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory.")
        if form.get("client_assertion_type") == CLIENT_ASSERTION:
            if not _assertion_signed_by(form.get("client_assertion", ""), app.certificate_pem):
                return 401, _entra_error(
                    "invalid_client", 700027,
                    "Client assertion failed signature validation.")
        elif app.secret is None or not secrets.compare_digest(
                form.get("client_secret", ""), app.secret):
            return 401, _entra_error("invalid_client", 7000215,
                                     "Invalid client secret provided.")
        scope = form.get("scope", "")
        if scope != "https://outlook.office365.com/.default":
            return 400, _entra_error("invalid_scope", 1002012,
                                     f"The provided value for scope {scope} is not valid.")
        return 200, self._issue(client_id, app.mailbox, scope)

    def generic_token(self, form: dict[str, str], basic: tuple[str, str] | None
                      ) -> tuple[int, dict[str, Any]]:
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        self._asked("generic", {**form, "client_id": client_id})
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        app = self.apps.get(client_id)
        if app is None or app.secret is None or not secrets.compare_digest(secret, app.secret):
            return 401, {"error": "invalid_client",
                         "error_description": "Client authentication failed."}
        return 200, self._issue(client_id, app.mailbox, form.get("scope", ""))

    def google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        import jwt

        self._asked("google", form)
        if form.get("grant_type") != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type"}
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            account = self.service_accounts.get(claims.get("iss", ""))
            if account is None:
                return 400, {"error": "invalid_client", "error_description":
                             "The OAuth client was not found."}
            # google-auth names Google's own endpoint as the audience, whatever token_uri is.
            claims = jwt.decode(assertion, account.public_key_pem, algorithms=["RS256"],
                                audience=[self.google_token_uri,
                                          "https://oauth2.googleapis.com/token"])
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= account.delegated_scopes:
            return 401, {"error": "unauthorized_client", "error_description":
                         "Client is unauthorized to retrieve access tokens using this "
                         "method, or client not authorized for any of the scopes requested."}
        user = str(claims.get("sub", ""))
        if user not in self.workspace_users:
            return 400, {"error": "invalid_grant", "error_description":
                         "Invalid email or User ID"}
        return 200, self._issue(account.client_id, user, " ".join(sorted(scopes)))

    def introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.introspections += 1
            found = next((t for t in self.issued
                          if secrets.compare_digest(t.value, form.get("token", ""))), None)
        if found is None or found.revoked or time.time() >= found.expires_at:
            return 200, {"active": False}
        return 200, {"active": True, "email": found.mailbox or "", "scope": found.scope,
                     "client_id": found.client_id, "exp": int(found.expires_at)}

    def _asked(self, provider: str, form: dict[str, str]) -> None:
        with self.lock:
            self.token_requests.append({
                "provider": provider, "client_id": form.get("client_id", ""),
                "grant_type": form.get("grant_type", ""), "scope": form.get("scope", ""),
            })


def _entra_error(error: str, code: int, text: str) -> dict[str, Any]:
    return {"error": error, "error_codes": [code], "error_description":
            f"AADSTS{code}: {text} Trace ID: 00000000-0000-0000-0000-000000000000 "
            "Correlation ID: 00000000-0000-0000-0000-000000000000",
            "trace_id": "00000000-0000-0000-0000-000000000000"}


def _assertion_signed_by(assertion: str, certificate_pem: bytes | None) -> bool:
    import jwt
    from cryptography import x509

    if not certificate_pem:
        return False
    key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    try:
        jwt.decode(assertion, key, algorithms=["PS256", "RS256"],
                   options={"verify_aud": False})
    except jwt.PyJWTError:
        return False
    return True


def _handler(provider: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the tests read what the provider recorded instead

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._answer(*provider.openid_configuration(parts[0]))
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            path = urlsplit(self.path).path.strip("/").split("/")
            if path == ["introspect"]:
                self._answer(*provider.introspect(form))
            elif path == ["oauth2", "token"]:
                self._answer(*provider.generic_token(form, self._basic()))
            elif path == ["google", "token"]:
                self._answer(*provider.google_token(form))
            elif path[1:] == ["oauth2", "v2.0", "token"]:
                self._answer(*provider.entra_token(path[0], form))
            else:
                self._answer(404, {"error": "not_found"})

        def _basic(self) -> tuple[str, str] | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            return unquote(client_id), unquote(secret)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# --- SMTP that accepts only XOAUTH2 ---------------------------------------------------------


@dataclass
class OAuth2SmtpSink(SmtpSink):
    """`SmtpSink` that requires AUTH XOAUTH2 with a token `provider` issued for the user,
    refusing as Exchange does (a JSON error challenge, then 535)."""

    provider: TokenServer | None = None
    refusals: list[str] = field(default_factory=list)

    @classmethod
    def start_for(cls, provider: TokenServer) -> OAuth2SmtpSink:
        from aiosmtpd.controller import Controller

        sink = cls(port=free_port(), provider=provider)
        # AUTH without TLS, said on every connection: on loopback, for tests, it is meant.
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS",
                                UserWarning)
        sink.controller = Controller(_OAuth2Handler(sink), hostname="127.0.0.1",
                                     port=sink.port, auth_required=True,
                                     auth_require_tls=False)
        sink.controller.start()
        return sink


class _OAuth2Handler(_SinkHandler):
    sink: OAuth2SmtpSink

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:  # noqa: N802
        from aiosmtpd.smtp import AuthResult

        blob = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        provider = self.sink.provider
        issued = provider.check(token, user) if provider else None
        if issued is not None:
            app = provider.apps.get(issued.client_id) if provider else None
            if app is None or app.smtp_auth_enabled:
                return AuthResult(success=True, auth_data=user)
            reply = ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
                     "disabled for the Mailbox.")
        else:
            reply = "535 5.7.3 Authentication unsuccessful"
        self.sink.refusals.append(reply)
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=False, handled=False, message=reply)
