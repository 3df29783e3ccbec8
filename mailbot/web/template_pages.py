"""The console's template pages: every reply and alert template with its live version;
an admin's editor with a preview and the policy check; a manager's approval and
rollback. The rules are mailbot/replies/versions.py's and policy.py's, the rendering the
one every email goes through; nothing here decides a rule."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbot.db.models import Contact, TemplateApproval, TemplateVersion, User
from mailbot.errors import RefusedError
from mailbot.replies import policy, versions
from mailbot.replies.policy import Entry, StoredTemplate
from mailbot.replies.render import TemplateError
from mailbot.web.app import Web, page

KINDS = {"templates": "Reply to the public", "alerts": "Staff alert"}
EXAMPLE = "example"


def _back(path: str, notice: str, request: Request) -> Response:
    request.session["notice"] = notice
    return RedirectResponse(path, 303)


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _entry(request: Request) -> Entry | None:
    try:
        return policy.entry_for(request.path_params["kind"], request.path_params["name"])
    except TemplateError:
        return None


def _number(request: Request) -> int | None:
    try:
        return int(request.path_params["number"])
    except ValueError:
        return None


def _href(entry: Entry) -> str:
    return f"/templates/{entry.kind}/{entry.name}"


def _consent(entry: Entry) -> str:
    return "staff only" if entry.kind == "alerts" else str(entry.consent)


def _version_states(saved: list[TemplateVersion], approved: set[int],
                    live: int) -> dict[int, str]:
    states = {}
    for version in saved:
        states[version.number] = (
            "live" if version.number == live else
            "approved before" if version.number in approved else
            "awaiting approval" if version.number > live else "never approved")
    return states


# --- the list --------------------------------------------------------------------------

@page("manager")
async def template_list(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        numbers = versions.live_numbers(session)
        saved = session.execute(select(TemplateVersion.kind, TemplateVersion.name,
                                       TemplateVersion.number)).all()
        approved = {(a.kind, a.name, a.number) for a in session.execute(
            select(TemplateApproval)).scalars()}
    rows = []
    for entry in policy.entries():
        key = (entry.kind, entry.name)
        live = numbers.get(key, versions.SHIPPED)
        awaiting = sum(1 for kind, name, number in saved
                       if (kind, name) == key and number > live
                       and (kind, name, number) not in approved)
        rows.append({"entry": entry, "kind": KINDS[entry.kind], "consent": _consent(entry),
                     "live": live, "awaiting": awaiting, "href": _href(entry),
                     "file_only": key in versions.FILE_ONLY})
    return web.render(request, "templates_list.html", rows=rows)


# --- one template ------------------------------------------------------------------------

@page("manager")
async def template_page(request: Request, web: Web, user: User) -> Response:
    entry = _entry(request)
    if entry is None:
        return web.render(request, "not_found.html", 404, what="no such template")
    override = web.config.replies.override_dir
    with web.sessions() as session:
        live = versions.live_number(session, entry.kind, entry.name)
        saved = versions.versions_of(session, entry.kind, entry.name)
        approvals = versions.approvals_of(session, entry.kind, entry.name)
        wording = versions.wording_of(session, entry, live, override)
        states = _version_states(saved, {a.number for a in approvals}, live)
        return web.render(
            request, "template.html", entry=entry, kind=KINDS[entry.kind],
            consent=_consent(entry), live=live, wording=wording, saved=saved,
            states=states, approvals=approvals, href=_href(entry),
            file_only=(entry.kind, entry.name) in versions.FILE_ONLY,
            examination=policy.examine(entry.kind, entry.name, wording, override))


# --- the editor --------------------------------------------------------------------------

def _recent_concerns(session: Any) -> list[str]:
    return list(session.execute(select(Contact.reference).where(
        Contact.related_contact_id.is_(None)).order_by(Contact.id.desc()).limit(30)).scalars())


def _preview(session: Any, web: Web, entry: Entry, wording: StoredTemplate,
             concern: str) -> dict[str, Any]:
    """The preview of WORDING, filled from the concern CONCERN (our reference) or from
    example data, by the one rendering path; or why there is none."""
    values, source, error = None, "example data (none of it real)", None
    if concern and concern != EXAMPLE:
        contact = session.execute(select(Contact).where(Contact.reference == concern)
                                  ).scalar_one_or_none()
        if contact is None:
            error = f"no concern {concern} in the log: the preview uses example data"
        else:
            values = versions.preview_values(session, web.config, contact)
            source = f"concern {contact.reference}"
    try:
        rendered = policy.preview(entry.name, values, web.config.replies.override_dir,
                                  live={(entry.kind, entry.name): wording})
    except TemplateError as exc:
        return {"rendered": None, "source": source, "problem": str(exc), "error": error}
    return {"rendered": rendered, "source": source, "problem": None, "error": error}


def _editor(request: Request, web: Web, entry: Entry, wording: StoredTemplate,
            concern: str, note: str = "", error: str | None = None,
            status_code: int = 200) -> Response:
    override = web.config.replies.override_dir
    with web.sessions() as session:
        live = versions.live_number(session, entry.kind, entry.name)
        live_wording = versions.wording_of(session, entry, live, override)
        checked = policy.examine(entry.kind, entry.name, wording, override)
        before = policy.examine(entry.kind, entry.name, live_wording, override)
        added, removed = versions.variable_changes(before.used, checked.used)
        preview = _preview(session, web, entry, wording, concern)
        return web.render(
            request, "template_edit.html", status_code, entry=entry, kind=KINDS[entry.kind],
            consent=_consent(entry), live=live, wording=wording, checked=checked,
            added=added, removed=removed, preview=preview, concern=concern,
            concerns=_recent_concerns(session), diff=versions.diff(live_wording, wording),
            out_of_step=versions.out_of_step(live_wording, wording),
            note=note, error=error, href=_href(entry),
            file_only=(entry.kind, entry.name) in versions.FILE_ONLY)


@page("admin")
async def template_edit(request: Request, web: Web, user: User) -> Response:
    entry = _entry(request)
    if entry is None:
        return web.render(request, "not_found.html", 404, what="no such template")
    with web.sessions() as session:
        wording = versions.live_wording(session, entry, web.config.replies.override_dir)
    return _editor(request, web, entry, wording,
                   request.query_params.get("concern", EXAMPLE))


@page("admin")
async def template_edit_post(request: Request, web: Web, user: User) -> Response:
    """"Preview" shows the edit checked and rendered, changing nothing; "Save" makes it
    a new version, refused with the reason when the check fails."""
    entry = _entry(request)
    if entry is None:
        return web.render(request, "not_found.html", 404, what="no such template")
    form = await _form(request)
    concern, note = form.get("concern", EXAMPLE), form.get("note", "")
    wording = versions.wording(entry.kind, entry.name, 0, subject=form.get("subject", ""),
                               text=form.get("text", ""), html=form.get("html"))
    if form.get("action") != "save":
        return _editor(request, web, entry, wording, concern, note)
    try:
        with web.sessions() as session:
            version = versions.save(
                session, entry.kind, entry.name, subject=form.get("subject", ""),
                text=form.get("text", ""), html=form.get("html"), note=note, by=user.name,
                override_dir=web.config.replies.override_dir)
            session.commit()
            number = version.number
    except RefusedError as exc:
        return _editor(request, web, entry, wording, concern, note,
                       error=f"Version not saved: {exc}", status_code=400)
    return _back(f"{_href(entry)}/versions/{number}",
                 f"Version {number} of {entry.name} saved. It is not used until a manager "
                 "(not you) approves it.", request)


# --- a version, its approval and rollback -----------------------------------------------

@page("manager")
async def version_page(request: Request, web: Web, user: User, error: str | None = None,
                       status_code: int = 200) -> Response:
    entry, number = _entry(request), _number(request)
    if entry is None or number is None:
        return web.render(request, "not_found.html", 404, what="no such template version")
    override = web.config.replies.override_dir
    concern = request.query_params.get("concern", EXAMPLE)
    with web.sessions() as session:
        try:
            wording = versions.wording_of(session, entry, number, override)
        except RefusedError as exc:
            return web.render(request, "not_found.html", 404, what=str(exc))
        version = (versions.find_version(session, entry.kind, entry.name, number)
                   if number else None)
        live = versions.live_number(session, entry.kind, entry.name)
        live_wording = versions.wording_of(session, entry, live, override)
        approvals = [a for a in versions.approvals_of(session, entry.kind, entry.name)
                     if a.number == number]
        checked = policy.examine(entry.kind, entry.name, wording, override)
        before = policy.examine(entry.kind, entry.name, live_wording, override)
        added, removed = versions.variable_changes(before.used, checked.used)
        rollback = number < live
        refusal = versions.approval_refusal(number, version.author if version else None,
                                            live, user.name, rollback=rollback)
        return web.render(
            request, "template_version.html", status_code, entry=entry,
            kind=KINDS[entry.kind], consent=_consent(entry), number=number, version=version,
            wording=wording, live=live, approvals=approvals, checked=checked, added=added,
            removed=removed, diff=versions.diff(live_wording, wording), rollback=rollback,
            out_of_step=versions.out_of_step(live_wording, wording),
            refusal=refusal, preview=_preview(session, web, entry, wording, concern),
            concern=concern, concerns=_recent_concerns(session), href=_href(entry),
            error=error)


async def _make_live(request: Request, web: Web, user: User, how: str) -> Response:
    entry, number = _entry(request), _number(request)
    if entry is None or number is None:
        return web.render(request, "not_found.html", 404, what="no such template version")
    act = versions.rollback if how == "rollback" else versions.approve
    try:
        with web.sessions() as session:
            act(session, entry.kind, entry.name, number, by=user.name,
                override_dir=web.config.replies.override_dir)
            session.commit()
    except RefusedError as exc:
        return await version_page.__wrapped__(request, web, user, error=str(exc),
                                              status_code=400)
    done = ("rolled back to" if how == "rollback" else "approved:")
    return _back(_href(entry), f"{entry.name} {done} version {number} is live from the "
                 "next email", request)


@page("manager")
async def version_approve(request: Request, web: Web, user: User) -> Response:
    return await _make_live(request, web, user, "approve")


@page("manager")
async def version_rollback(request: Request, web: Web, user: User) -> Response:
    return await _make_live(request, web, user, "rollback")


ROUTES = (
    ("/templates", template_list, ["GET"]),
    ("/templates/{kind}/{name}", template_page, ["GET"]),
    ("/templates/{kind}/{name}/edit", template_edit, ["GET"]),
    ("/templates/{kind}/{name}/edit", template_edit_post, ["POST"]),
    ("/templates/{kind}/{name}/versions/{number}", version_page, ["GET"]),
    ("/templates/{kind}/{name}/versions/{number}/approve", version_approve, ["POST"]),
    ("/templates/{kind}/{name}/versions/{number}/rollback", version_rollback, ["POST"]),
)
