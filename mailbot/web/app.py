"""The console's application: decides who may see each page and do each action, then
hands the work to the functions the command line calls.

Every route is declared in `ROUTES` through `page(role)`, which refuses a request with
no session (a redirect to the sign-in page) or with a role below the route's (403), and
a POST without the session's CSRF token (403), before the page's own code runs; the
security tests walk `ROUTES`, so a route added without `page` fails them. Sessions are
signed cookies (itsdangerous, the secret from `[web] session_secret_file`) that end
after `[web] idle_minutes` unused, and when the account is disabled or its password is
reset. Every response carries a Content-Security-Policy with no inline script and
frame-ancestors 'none', and HSTS when `[web] behind_tls`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mailbot.config import Config
from mailbot.db.models import User
from mailbot.web import accounts
from mailbot.web.throttle import AddressThrottle

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
# What each role sees in the navigation. Entra ID sign-in (the next issue) adds its
# entries here, with manager and admin roles.
NAV = (
    ("Queue", "/queue", "officer"),
    ("Drafts", "/drafts", "officer"),
    ("Consent", "/consent", "officer"),
    ("Quarantine", "/quarantine", "officer"),
    ("Mailbox health", "/health", "officer"),
    ("Audit trail", "/audit", "manager"),
    ("Templates", "/templates", "manager"),
    ("Reports", "/reports", "manager"),
    ("Users", "/users", "admin"),
)

Endpoint = Callable[[Request], Awaitable[Response]]
# What each reply template is, in the words an officer uses.
TEMPLATE_NAMES = {
    "ack_consent": "acknowledgement with consent (may name the prisoner)",
    "ack_no_consent": "acknowledgement without consent (says nothing about the prisoner)",
    "ack_restricted": "acknowledgement to a restricted contact (says nothing)",
    "ack_unverified": "acknowledgement to an unverified sender (says nothing)",
    "signposting": "signposting (where to ask instead)",
}


def local_time(when: datetime | None, zone: ZoneInfo, seconds: bool = False) -> str:
    """A stored (UTC) time as the prison's clock shows it: '02 Dec 2026 16:49 GMT'."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone).strftime("%d %b %Y %H:%M" + (":%S" if seconds else "")
                                          + " %Z")


def rows_for(text: str, width: int = 90) -> int:
    """Enough rows for a textarea to show TEXT without scrolling (a draft is read whole
    before it is approved)."""
    lines = (text or "").split("\n")
    return max(8, sum(1 + len(line) // width for line in lines) + 1)


class Web:
    """What every page is given: the configuration, database sessions and templates."""

    def __init__(self, config: Config, sessions: sessionmaker[Session]) -> None:
        self.config, self.sessions = config, sessions
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(default=True),
                                     trim_blocks=True, lstrip_blocks=True)
        zone = ZoneInfo(config.office_hours.timezone)
        self.templates.filters.update(
            local=lambda when, seconds=False: local_time(when, zone, seconds),
            words=lambda name: str(name or "").replace("_", " "),
            template_name=lambda name: TEMPLATE_NAMES.get(name, str(name).replace("_", " ")),
            rows_for=rows_for)

    def render(self, request: Request, name: str, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        user = request.scope.get("user")
        notice = request.session.pop("notice", None) if "session" in request.scope else None
        html = self.templates.get_template(name).render(
            request=request, user=user, csrf=csrf_token(request), notice=notice,
            nav=[(label, href) for label, href, role in NAV
                 if user is not None and accounts.allows(user.role, role)],
            prison=self.config.prison.name, **context)
        response = HTMLResponse(html, status_code=status_code)
        oidc = getattr(request.app.state, "oidc", None)
        if name == "sign_in.html" and oidc is not None:
            # Sign in with Microsoft posts here and is redirected on to the provider.
            response.headers["content-security-policy"] = CSP.replace(
                "form-action 'self'", f"form-action 'self' {oidc.form_action_sources()}")
        return response


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def page(role: str) -> Callable[[Callable[..., Awaitable[Response]]], Endpoint]:
    """The guard every route goes through: a signed-in user whose role allows ROLE, and
    on a POST the session's CSRF token."""

    def decorate(handler: Callable[..., Awaitable[Response]]) -> Endpoint:
        @wraps(handler)
        async def guarded(request: Request) -> Response:
            web: Web = request.app.state.web
            user = _signed_in(web, request)
            if user is None:
                request.session.clear()
                if request.method == "GET":
                    return RedirectResponse(f"/sign-in?next={request.url.path}", 303)
                return Response("sign in first", 401)
            request.scope["user"] = user
            if not accounts.allows(user.role, role):
                return web.render(request, "refused.html", 403, needed=role)
            if request.method == "POST" and not await _csrf_ok(request):
                return Response("the form's security token is missing or out of date: "
                                "go back, reload the page and try again", 403)
            return await handler(request, web, user)

        guarded.role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def public(handler: Endpoint) -> Endpoint:
    handler.role = None  # type: ignore[attr-defined]
    return handler


async def _csrf_ok(request: Request) -> bool:
    form = await request.form()
    sent, expected = form.get("csrf_token"), request.session.get("csrf")
    return bool(expected) and isinstance(sent, str) and secrets.compare_digest(sent, expected)


def _signed_in(web: Web, request: Request) -> User | None:
    user_id, since = request.session.get("user"), request.session.get("since")
    if not user_id or since is None:
        return None
    with web.sessions() as session:
        user = session.get(User, user_id)
        if user is None or user.disabled_at is not None:
            return None
        if user.password_changed_at.timestamp() > since:
            return None  # signed in before a password reset
        session.expunge(user)
    return user


def create_app(config: Config, sessions: sessionmaker[Session],
               session_secret: str | None = None) -> Starlette:
    from mailbot.web import assets, pages

    web = Web(config, sessions)
    settings = config.web
    routes: list[Any] = [Route(path, endpoint, methods=methods)
                         for path, endpoint, methods in pages.ROUTES]
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    vendor = assets.vendor_dir()
    if vendor is not None:
        routes.append(Mount("/assets", StaticFiles(directory=vendor), name="assets"))
    app = Starlette(routes=routes, middleware=[
        Middleware(SecurityHeaders, hsts=settings.behind_tls),
        Middleware(SessionMiddleware, secret_key=session_secret or settings.session_secret(),
                   session_cookie="mailbot_session", max_age=int(settings.idle_minutes * 60),
                   same_site="strict", https_only=settings.behind_tls),
    ])
    app.state.web = web
    from mailbot.web.oidc import OidcClient

    app.state.oidc = OidcClient(settings.oidc) if settings.oidc is not None else None
    app.state.throttle = AddressThrottle(settings.address_attempts,
                                         timedelta(minutes=settings.lockout_minutes))
    return app


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every response."""

    def __init__(self, app: Any, hsts: bool) -> None:
        self.app, self.hsts = app, hsts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                names = {k.lower() for k, _ in headers}
                extra = {
                    b"content-security-policy": CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"x-frame-options": b"DENY",
                    b"referrer-policy": b"no-referrer",
                    b"cache-control": b"no-store",
                }
                if self.hsts:
                    extra[b"strict-transport-security"] = b"max-age=31536000"
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def serve(config: Config, sessions: sessionmaker[Session]) -> int:
    import uvicorn

    app = create_app(config, sessions)
    settings = config.web
    uvicorn.run(app, host=settings.host, port=settings.port, proxy_headers=True,
                forwarded_allow_ips=list(settings.trusted_proxies), log_level="warning",
                server_header=False)
    return 0
