"""Entra ID sign-in to the console: OpenID Connect's authorization code flow with PKCE
(S256), decides whether the person the provider sends back may come in, and with which
role (`[web.oidc]`, docs/entra-id.md).

"Sign in with Microsoft" (a form POST, CSRF-checked) makes a random state, nonce and
PKCE verifier, keeps them here in memory under the state (one use each, for ten minutes)
and sends the browser to the provider's authorization endpoint; the state also goes in a
cookie of its own (SameSite=Lax, so that the provider's redirect back carries it, where
the console's SameSite=Strict session cookie is not sent), binding the flow to the
browser that started it. The callback takes the state out (a second use finds nothing),
checks it against the cookie, exchanges the code with the verifier and the client
secret at the token endpoint, and checks the ID token with PyJWT: its signature against
the provider's JWKS (RS256 and the like only, never `none` or a shared secret), iss (the
discovery document's, which must be the configured one), aud (the client ID), exp, nbf
and iat (a minute's leeway), and the nonce. Anything else is refused with a page saying
what to do and an audit event saying why (never the token: its contents are logged at
DEBUG only).

A person let in has a row in the users table, made at their first sign-in and updated
at every one (source "entra", external_id the Entra object ID, the name that the audit
trail shows, "Jane Smith <jane.smith@prison.gov.uk> (Entra ID)", and the role from the
highest of their mapped groups, last_login_at); a row disabled here is refused whatever
Entra says. Someone in none of the mapped groups is refused, and told to ask for one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.casework.audit import MAILBOT, record_event
from mailbot.config import OidcSettings
from mailbot.db.models import User, utcnow
from mailbot.web.accounts import _LEVEL, Role

log = logging.getLogger(__name__)

STATE_COOKIE = "mailbot_oidc_state"
FLOW_SECONDS = 600
LEEWAY_SECONDS = 60
# Asymmetric signatures only: `none` and HS256 (a key the client knows) are never taken.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
MAX_PENDING = 10_000
NOT_A_PASSWORD = "!entra"  # no argon2 hash: a local password never matches it


class OidcRefused(Exception):
    """A sign-in the provider's answer does not allow: `reason` goes to the audit trail,
    `message` to the person, `status` is the page's."""

    def __init__(self, reason: str, message: str, status: int = 400,
                 who: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.message, self.status, self.who = reason, message, status, who


TRY_AGAIN = ("Go back to the sign-in page and choose Sign in with Microsoft again. If it "
             "happens again, tell the person who runs mailbot; the audit trail says why.")


@dataclass
class Flow:
    nonce: str
    verifier: str
    next: str
    started: float


@dataclass(frozen=True)
class Person:
    """Who the ID token says signed in."""

    external_id: str
    label: str  # the audit trail's name for them
    groups: tuple[str, ...]


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """The console's side of the flow, one per application."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._pending: dict[str, Flow] = {}
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._jwks: Any = None
        self._ssl = ssl.create_default_context(cafile=settings.ca_file)

    @property
    def label(self) -> str:
        return "Entra ID" if self.settings.provider == "microsoft" else "OpenID Connect"

    # --- The provider's documents ---------------------------------------------------------

    def _get_json(self, url: str, data: dict[str, str] | None = None) -> tuple[int, Any]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, headers={
            "Accept": "application/json", "User-Agent": "mailbot-console"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds,
                                        context=self._ssl) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except (OSError, ValueError) as exc:
            raise OidcRefused(f"provider unreachable: {type(exc).__name__}",
                              "Microsoft's sign-in service could not be reached from "
                              "mailbot. Try again in a few minutes; if it goes on, tell "
                              "the person who runs mailbot.", 502) from exc

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            issuer = self.settings.issuer_url
            status, document = self._get_json(issuer + "/.well-known/openid-configuration")
            if status != 200 or not isinstance(document, dict):
                raise OidcRefused(f"discovery document answered {status}",
                                  "Microsoft's sign-in service did not answer as expected. "
                                  + TRY_AGAIN, 502)
            # OpenID Connect Discovery 1.0, 4.3: the issuer must be the one asked about.
            if document.get("issuer") != issuer:
                raise OidcRefused("discovery document names another issuer",
                                  "Microsoft's sign-in service is not the one configured. "
                                  + TRY_AGAIN, 502)
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not str(document.get(key, "")).startswith(("https://", "http://127.",
                                                               "http://localhost")):
                    raise OidcRefused(f"discovery document lacks {key}",
                                      "Microsoft's sign-in service did not answer as "
                                      "expected. " + TRY_AGAIN, 502)
            self._discovery = document
        return self._discovery

    def _signing_key(self, token: str) -> Any:
        import jwt

        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(self.discovery()["jwks_uri"], cache_keys=True,
                                         lifespan=3600, ssl_context=self._ssl,
                                         timeout=self.settings.timeout_seconds)
        return self._jwks.get_signing_key_from_jwt(token).key

    def form_action_sources(self) -> str:
        """The origins the sign-in page's form may end at, for its CSP's form-action:
        browsers hold a form's POST to it through the redirect that follows, so the
        provider's authorization endpoint must be named besides 'self'."""
        urls = [self.settings.issuer_url]
        if self._discovery is not None:
            urls.append(self._discovery["authorization_endpoint"])
        origins = []
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
        return " ".join(origins)

    def prefetch(self) -> None:
        """Read the discovery document if it can be (the sign-in page's CSP names its
        authorization endpoint); a provider not answering is said at sign-in instead."""
        try:
            self.discovery()
        except OidcRefused as refused:
            log.warning("OpenID Connect discovery: %s", refused.reason)

    # --- Starting: to the provider --------------------------------------------------------

    def start(self, next_path: str) -> tuple[str, str]:
        """The authorization URL to send the browser to, and the state for its cookie."""
        endpoint = self.discovery()["authorization_endpoint"]
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        now = time.time()
        with self._lock:
            for old in [s for s, f in self._pending.items() if f.started < now - FLOW_SECONDS]:
                del self._pending[old]
            while len(self._pending) >= MAX_PENDING:
                del self._pending[next(iter(self._pending))]
            self._pending[state] = Flow(nonce, verifier, next_path, now)
        query = urllib.parse.urlencode({
            "client_id": self.settings.client_id, "response_type": "code",
            "redirect_uri": self.settings.redirect_uri, "response_mode": "query",
            "scope": self.settings.scope, "state": state, "nonce": nonce,
            "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256",
        })
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", state

    # --- Coming back: the code, the token, the person -------------------------------------

    def _take_flow(self, state: str, cookie: str | None) -> Flow:
        with self._lock:
            flow = self._pending.pop(state, None) if state else None
        if flow is None or time.time() - flow.started > FLOW_SECONDS:
            raise OidcRefused("unknown, used or expired state",
                              "This sign-in link has been used already or is out of date. "
                              + TRY_AGAIN)
        if not cookie or not secrets.compare_digest(cookie, state):
            raise OidcRefused("state not started in this browser",
                              "This sign-in was not started in this browser. " + TRY_AGAIN)
        return flow

    def finish(self, params: dict[str, str], cookie: str | None) -> tuple[Person, str]:
        """The person the provider signed in, and where they were going."""
        flow = self._take_flow(params.get("state", ""), cookie)
        if params.get("error"):
            log.debug("provider error: %s", params.get("error_description", ""))
            raise OidcRefused(f"provider said {params['error'][:60]}",
                              "Microsoft did not sign you in. " + TRY_AGAIN)
        code = params.get("code", "")
        if not code:
            raise OidcRefused("no code", "Microsoft did not sign you in. " + TRY_AGAIN)
        status, answer = self._get_json(self.discovery()["token_endpoint"], {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.settings.redirect_uri, "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret(), "code_verifier": flow.verifier,
        })
        if status != 200 or not isinstance(answer, dict) or not answer.get("id_token"):
            error = answer.get("error", "") if isinstance(answer, dict) else ""
            log.debug("token endpoint answered %s: %s", status,
                      answer.get("error_description", "") if isinstance(answer, dict) else "")
            raise OidcRefused(f"token endpoint answered {status} {str(error)[:60]}".strip(),
                              "Microsoft would not complete the sign-in. " + TRY_AGAIN)
        claims = self.check_id_token(str(answer["id_token"]), flow.nonce)
        return self.person(claims), flow.next

    def check_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise OidcRefused(f"ID token signed with {str(header.get('alg'))[:20]}",
                                  "The sign-in could not be checked. " + TRY_AGAIN)
            claims = jwt.decode(
                token, self._signing_key(token), algorithms=list(ALGORITHMS),
                audience=self.settings.client_id, issuer=self.settings.issuer_url,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"],
                         "verify_signature": True, "verify_exp": True, "verify_nbf": True,
                         "verify_iat": True, "verify_aud": True, "verify_iss": True})
        except jwt.PyJWTError as exc:
            log.debug("ID token refused: %s", exc)
            raise OidcRefused(f"ID token refused: {_why(exc)}",
                              "The sign-in could not be checked. " + TRY_AGAIN) from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            # OpenID Connect Core 3.1.3.7: several audiences need azp to be us.
            raise OidcRefused("ID token refused: wrong audience (azp)",
                              "The sign-in could not be checked. " + TRY_AGAIN)
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcRefused("ID token refused: wrong nonce",
                              "The sign-in could not be checked. " + TRY_AGAIN)
        log.debug("ID token accepted: %s", claims)
        return claims

    def person(self, claims: dict[str, Any]) -> Person:
        microsoft = self.settings.provider == "microsoft"
        oid = str(claims.get("oid") or "") if microsoft else ""
        if microsoft and not oid:
            raise OidcRefused("ID token has no oid", "The sign-in could not be checked. "
                              + TRY_AGAIN)
        external_id = f"entra:{oid}" if microsoft else f"{claims['iss']}|{claims['sub']}"
        name = str(claims.get("name") or "").strip()
        username = str(claims.get("preferred_username") or claims.get("email") or "").strip()
        label = " ".join(part for part in (
            name, f"<{username}>" if username else f"<{oid or claims['sub']}>",
            f"({self.label})") if part)
        if "groups" not in claims and "groups" in (claims.get("_claim_names") or {}):
            raise OidcRefused("groups overage", (
                "You are in too many groups for Microsoft to list them in the sign-in. Ask "
                "the person who runs mailbot to make the app send only the groups assigned "
                "to it (docs/entra-id.md)."), 403, who=label)
        groups = claims.get("groups") or []
        if not isinstance(groups, list):
            groups = []
        return Person(external_id, label[:200], tuple(str(g) for g in groups))

    def role_for(self, person: Person) -> str | None:
        roles = [self.settings.groups[g] for g in person.groups if g in self.settings.groups]
        return max(roles, key=lambda r: _LEVEL[Role(r)]) if roles else None


def _why(exc: Exception) -> str:
    """A PyJWT refusal in the audit trail's words: which check failed, no token content."""
    import jwt

    for kind, words in ((jwt.ExpiredSignatureError, "expired"),
                        (jwt.ImmatureSignatureError, "not yet valid"),
                        (jwt.InvalidAudienceError, "wrong audience"),
                        (jwt.InvalidIssuerError, "wrong issuer"),
                        (jwt.InvalidSignatureError, "bad signature"),
                        (jwt.MissingRequiredClaimError, "missing claim"),
                        (jwt.PyJWKClientError, "signing key not in the JWKS"),
                        (jwt.DecodeError, "not a well-formed token")):
        if isinstance(exc, kind):
            return words
    return type(exc).__name__


def sign_in_user(session: Session, client: OidcClient, person: Person) -> User:
    """The users-table row for PERSON, made or updated; refused when in no mapped group or
    disabled here. Audited either way; the caller commits."""
    role = client.role_for(person)
    user = session.execute(select(User).where(User.external_id == person.external_id)
                           ).scalar_one_or_none()
    if role is None:
        raise OidcRefused("in no mapped group", (
            "Your account is not in any of the groups that give access to mailbot. Ask the "
            "person who runs mailbot to add you to the group for your role (officer, "
            "manager or admin), then sign in again."), 403, who=person.label)
    if user is not None and user.disabled_at is not None:
        raise OidcRefused("disabled in mailbot", (
            "Your access to mailbot has been switched off. Ask an admin if you should "
            "have it."), 403, who=user.name)
    now = utcnow()
    name = person.label
    clash = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if clash is not None and clash is not user:
        name = f"{name[:170]} [{person.external_id[-12:]}]"
    if user is None:
        user = User(name=name, role=role, password_hash=NOT_A_PASSWORD, created_at=now,
                    created_by=f"{client.label} sign-in", password_changed_at=now,
                    failed_logins=0, source="entra", external_id=person.external_id)
        session.add(user)
        record_event(session, actor=name, action="user_added",
                     detail={"user": name, "role": role, "source": "entra"})
    elif user.role != role or user.name != name:
        record_event(session, actor=name, action="user_updated_from_groups",
                     detail={"from": {"name": user.name, "role": user.role},
                             "to": {"name": name, "role": role}})
        user.role, user.name = role, name
    user.last_login_at = now
    record_event(session, actor=name, action="user_signed_in",
                 detail={"source": "entra", "role": role})
    return user


def record_refusal(session: Session, refused: OidcRefused, address: str) -> None:
    record_event(session, actor=MAILBOT, action="oidc_sign_in_refused",
                 detail={"reason": refused.reason, "address": address,
                         **({"who": refused.who} if refused.who else {})})
