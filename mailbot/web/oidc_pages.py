"""The console's Entra ID sign-in pages (mailbot/web/oidc.py does the checking): the
"Sign in with Microsoft" form's target, which sends the browser to the provider, and the
callback the provider sends it back to. Both are public (no session yet), answer 404
when `[web.oidc]` is not configured, and refuse with a page and an audit event."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbot.db.models import utcnow
from mailbot.web.app import Web, csrf_token, public
from mailbot.web.oidc import (
    FLOW_SECONDS,
    STATE_COOKIE,
    OidcClient,
    OidcRefused,
    record_refusal,
    sign_in_user,
)

CALLBACK = "/sign-in/entra/callback"


def _next(value: str | None) -> str:
    value = value or "/queue"
    return (value if value.startswith("/") and not value.startswith(("//", "/\\"))
            else "/queue")


def _refused(request: Request, web: Web, refused: OidcRefused) -> Response:
    response = web.render(request, "oidc_refused.html", refused.status,
                          message=refused.message)
    response.delete_cookie(STATE_COOKIE, path="/sign-in/entra")
    return response


def _audit_refusal(web: Web, refused: OidcRefused, request: Request) -> None:
    address = request.client.host if request.client else "unknown"
    with web.sessions() as session:
        record_refusal(session, refused, address)
        session.commit()


@public
async def entra_start(request: Request) -> Response:
    web: Web = request.app.state.web
    client: OidcClient | None = request.app.state.oidc
    if client is None:
        return web.render(request, "not_found.html", 404,
                          what="Signing in with Microsoft is not set up here.")
    form = await request.form()
    expected = request.session.get("csrf")
    if not expected or form.get("csrf_token") != expected:
        return Response("the form's security token is missing or out of date: reload the "
                        "sign-in page", 403)
    try:
        url, state = await run_in_threadpool(client.start,
                                             _next(request.query_params.get("next")))
    except OidcRefused as refused:
        await run_in_threadpool(_audit_refusal, web, refused, request)
        return _refused(request, web, refused)
    response = RedirectResponse(url, 303)
    # Lax, not the session's Strict: the provider's redirect back is a top-level GET
    # from its site, which a Strict cookie would not come with.
    response.set_cookie(STATE_COOKIE, state, max_age=FLOW_SECONDS, path="/sign-in/entra",
                        secure=web.config.web.behind_tls, httponly=True, samesite="lax")
    return response


@public
async def entra_callback(request: Request) -> Response:
    web: Web = request.app.state.web
    client: OidcClient | None = request.app.state.oidc
    if client is None:
        return web.render(request, "not_found.html", 404,
                          what="Signing in with Microsoft is not set up here.")
    params = {k: v for k, v in request.query_params.items()}
    cookie = request.cookies.get(STATE_COOKIE)

    def run() -> tuple[int, str]:
        person, target = client.finish(params, cookie)
        with web.sessions() as session:
            user = sign_in_user(session, client, person)
            session.commit()
            return user.id, target

    try:
        user_id, target = await run_in_threadpool(run)
    except OidcRefused as refused:
        await run_in_threadpool(_audit_refusal, web, refused, request)
        return _refused(request, web, refused)
    request.session.clear()  # a new session on signing in: no fixation
    request.session.update(user=user_id, since=utcnow().timestamp())
    csrf_token(request)
    # A page of ours that moves on to the queue, not a redirect: the navigation here was
    # begun on the provider's page (another site), and a redirect would carry that on, so
    # the browser would not send the Strict session cookie with it (tests/
    # test_web_browser_oidc.py); from our own page, it does.
    response = web.render(request, "oidc_continue.html", target=target)
    response.delete_cookie(STATE_COOKIE, path="/sign-in/entra")
    return response


ROUTES = (
    ("/sign-in/entra", entra_start, ["POST"]),
    (CALLBACK, entra_callback, ["GET"]),
)
