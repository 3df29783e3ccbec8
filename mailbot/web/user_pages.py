"""The console's Users page (admin): list, add, disable, reset a password, change a
role, see the last sign-in. Every change is made by the functions `mailbot users`
calls (mailbot/web/accounts.py), under the signed-in admin's name."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbot.db.models import User, utcnow
from mailbot.errors import RefusedError
from mailbot.web import accounts
from mailbot.web.app import Web, page


def _back(path: str, notice: str, request: Request) -> Response:
    request.session["notice"] = notice
    return RedirectResponse(path, 303)


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _state(user: User) -> str:
    if user.disabled_at is not None:
        return "disabled"
    if user.locked_until is not None and user.locked_until > utcnow():
        return "locked"
    return "active"


@page("admin")
async def users_page(request: Request, web: Web, user: User, error: str | None = None,
                     status_code: int = 200, prefill: dict[str, str] | None = None
                     ) -> Response:
    with web.sessions() as session:
        rows = [(u, _state(u)) for u in accounts.listing(session)]
        return web.render(request, "users.html", status_code, rows=rows,
                          roles=accounts.ROLES, error=error, prefill=prefill or {},
                          minimum=accounts.MIN_PASSWORD_LENGTH)


@page("admin")
async def user_page(request: Request, web: Web, user: User, error: str | None = None,
                    status_code: int = 200) -> Response:
    with web.sessions() as session:
        found = session.get(User, _int(request.path_params["user_id"]))
        if found is None:
            return web.render(request, "not_found.html", 404, what="no such user")
        return web.render(request, "user.html", status_code, person=found,
                          state=_state(found), roles=accounts.ROLES, error=error,
                          minimum=accounts.MIN_PASSWORD_LENGTH)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _passwords(form: dict[str, str]) -> str:
    password = form.get("password", "")
    if password != form.get("confirm", ""):
        raise accounts.AccountError("the two passwords are not the same")
    return password


@page("admin")
async def user_add(request: Request, web: Web, user: User) -> Response:
    form = await _form(request)
    try:
        with web.sessions() as session:
            added = accounts.add(session, form.get("name", ""), form.get("role", ""),
                                 _passwords(form), by=user.name)
            session.commit()
            name, role = added.name, added.role
    except RefusedError as exc:
        return await users_page.__wrapped__(
            request, web, user, error=str(exc), status_code=400,
            prefill={"name": form.get("name", ""), "role": form.get("role", "")})
    return _back("/users", f"User {name} added ({role})", request)


async def _change(request: Request, web: Web, user: User, what: str) -> Response:
    user_id = _int(request.path_params["user_id"])
    form = await _form(request)
    try:
        with web.sessions() as session:
            found = session.get(User, user_id)
            if found is None:
                return web.render(request, "not_found.html", 404, what="no such user")
            name = found.name
            if what == "disable":
                accounts.disable(session, name, by=user.name)
                done = f"User {name} disabled: their sessions end at their next request"
            elif what == "reset":
                accounts.reset(session, name, _passwords(form), by=user.name)
                done = (f"User {name} has a new password (the account is enabled and "
                        "unlocked, and their sessions end)")
            else:
                accounts.change_role(session, name, form.get("role", ""), by=user.name)
                done = f"User {name} is now {form.get('role')}"
            session.commit()
    except RefusedError as exc:
        return await user_page.__wrapped__(request, web, user, error=str(exc),
                                           status_code=400)
    return _back(f"/users/{user_id}", done, request)


@page("admin")
async def user_disable(request: Request, web: Web, user: User) -> Response:
    return await _change(request, web, user, "disable")


@page("admin")
async def user_reset(request: Request, web: Web, user: User) -> Response:
    return await _change(request, web, user, "reset")


@page("admin")
async def user_role(request: Request, web: Web, user: User) -> Response:
    return await _change(request, web, user, "role")


ROUTES = (
    ("/users", users_page, ["GET"]),
    ("/users/add", user_add, ["POST"]),
    ("/users/{user_id}", user_page, ["GET"]),
    ("/users/{user_id}/disable", user_disable, ["POST"]),
    ("/users/{user_id}/reset", user_reset, ["POST"]),
    ("/users/{user_id}/role", user_role, ["POST"]),
)
