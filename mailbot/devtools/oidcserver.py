"""A throwaway OpenID Connect provider for the console's Entra ID sign-in tests, shaped
like Entra ID's v2.0 endpoints for one tenant: the discovery document
(/TENANT/v2.0/.well-known/openid-configuration), the JWKS (/TENANT/discovery/v2.0/keys),
the authorization endpoint (/TENANT/oauth2/v2.0/authorize), which signs in whoever the
test chose (`sign_in_as`) with no page and redirects back with a code, and the token
endpoint (/TENANT/oauth2/v2.0/token), which checks the client secret, the redirect URI
and the PKCE verifier (S256) and returns an RS256-signed ID token with the nonce it was
given. `tamper` changes the next ID tokens (another audience, issuer or nonce, an expiry
in the past, a key not in the JWKS) so that tests can see each refused. HTTPS with a
certificate from a trustme CA, as mailbot/devtools/tokenserver.py. Nothing here is used
by the console.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mailbot.devtools.devservers import free_port

TENANT = "5f0c6a31-7d1e-4c0a-9b7e-000000000017"


@dataclass
class Person:
    """Someone in the tenant: what Entra puts in their ID token."""

    name: str
    username: str  # preferred_username, their UPN
    oid: str = field(default_factory=lambda: secrets.token_hex(16))
    groups: list[str] = field(default_factory=list)


@dataclass
class Grant:
    person: Person
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    used: bool = False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcServer:
    def __init__(self, ca: Any, client_id: str, client_secret: str,
                 redirect_uri: str, host: str = "127.0.0.1") -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.ca, self.client_id, self.client_secret = ca, client_id, client_secret
        self.redirect_uri = redirect_uri
        # "localhost" makes it another site to a browser on a console at 127.0.0.1.
        self.host = host
        # True: the authorization endpoint shows a page with a link back, which a browser
        # test follows, as a person does at Microsoft's sign-in page (the navigation back
        # is then the provider's, cross-site); False: it redirects at once.
        self.interactive = False
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self.person: Person | None = None
        self.tamper: dict[str, Any] = {}  # claims to change; "key": "other" signs wrongly
        self.grants: dict[str, Grant] = {}
        self.token_requests: list[dict[str, str]] = []  # secrets left out
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def start(self) -> OidcServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.port = free_port()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name="oidc-server", daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def authority_host(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.authority_host}/{TENANT}/v2.0"

    def sign_in_as(self, person: Person) -> Person:
        self.person = person
        return person

    # The endpoints: each returns (status, headers, JSON body or None).

    def discovery(self) -> dict[str, Any]:
        base = f"{self.authority_host}/{TENANT}"
        return {"issuer": self.issuer,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"]}

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()

        def whole(n: int) -> str:
            return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "alg": "RS256",
                          "n": whole(numbers.n), "e": whole(numbers.e)}]}

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if query.get("client_id") != self.client_id:
            return 400, {}, {"error": "unauthorized_client"}
        if query.get("redirect_uri") != self.redirect_uri:
            return 400, {}, {"error": "invalid_request", "error_description":
                             "AADSTS50011: The redirect URI does not match."}
        if (query.get("response_type") != "code" or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge") or "openid" not in
                query.get("scope", "").split()):
            return 400, {}, {"error": "invalid_request"}
        if self.person is None:
            return 400, {}, {"error": "login_required"}
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.grants[code] = Grant(self.person, self.client_id, query["redirect_uri"],
                                      query.get("nonce", ""), query["code_challenge"])
        back = query["redirect_uri"] + "?" + urlencode({"code": code,
                                                        "state": query.get("state", "")})
        if self.interactive:
            from html import escape

            page = (f'<!DOCTYPE html><html lang="en"><head><title>Sign in</title></head><body>'
                    f'<main><h1>Sign in</h1><a id="continue" href="{escape(back)}">Continue '
                    f'as {escape(self.person.name)}</a></main></body></html>')
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        return 302, {"Location": back}, None

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.token_requests.append({k: v for k, v in form.items()
                                        if k not in ("client_secret", "code_verifier")})
            grant = self.grants.get(form.get("code", ""))
            if grant is not None and not grant.used:
                grant.used = True
            else:
                grant = None
        if form.get("grant_type") != "authorization_code":
            return 400, {}, {"error": "unsupported_grant_type"}
        if form.get("client_id") != self.client_id or not secrets.compare_digest(
                form.get("client_secret", ""), self.client_secret):
            return 401, {}, {"error": "invalid_client"}
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return 400, {}, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            return 400, {}, {"error": "invalid_grant", "error_description":
                             "AADSTS501481: The Code_Verifier does not match."}
        return 200, {}, {"token_type": "Bearer", "access_token": secrets.token_urlsafe(24),
                         "expires_in": 3600, "id_token": self.id_token(grant)}

    def id_token(self, grant: Grant) -> str:
        import jwt

        now = int(time.time())
        person = grant.person
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": grant.client_id, "iat": now, "nbf": now,
            "exp": now + 3600, "sub": _b64(hashlib.sha256(person.oid.encode()).digest()),
            "oid": person.oid, "tid": TENANT, "nonce": grant.nonce, "name": person.name,
            "preferred_username": person.username, "ver": "2.0",
        }
        if person.groups:
            claims["groups"] = list(person.groups)
        tamper = dict(self.tamper)
        key = self.other_key if tamper.pop("key", None) == "other" else self.key
        claims.update(tamper)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})


def _handler(provider: OidcServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path = parts.path.strip("/").split("/")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if path[:1] != [TENANT]:
                self._answer(400, {}, {"error": "invalid_tenant"})
            elif path[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._answer(200, {}, provider.discovery())
            elif path[1:] == ["discovery", "v2.0", "keys"]:
                self._answer(200, {}, provider.jwks())
            elif path[1:] == ["oauth2", "v2.0", "authorize"]:
                self._answer(*provider.authorize(query))
            else:
                self._answer(404, {}, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            path = urlsplit(self.path).path.strip("/").split("/")
            if path == [TENANT, "oauth2", "v2.0", "token"]:
                self._answer(*provider.token(form))
            else:
                self._answer(404, {}, {"error": "not_found"})

        def _answer(self, status: int, headers: dict[str, str], body: Any) -> None:
            if isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
