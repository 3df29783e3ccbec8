"""The console's pages and actions. Each reads with the same queries, and acts through
the same functions, as the command line (mailbot/cli/): nothing here decides a rule."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbot.casework import actions as casework
from mailbot.casework.audit import MAILBOT, record_event
from mailbot.casework.deadlines import due_by, hours_left, record_phone_response
from mailbot.db.models import AuditEvent, Contact, Draft, StoredMessage, User, utcnow
from mailbot.errors import RefusedError
from mailbot.parsers.contact import ContactStatus, Disposition
from mailbot.replies import consent, drafts
from mailbot.triage import CATEGORIES, RANK, URGENCIES
from mailbot.web import accounts, oidc_pages, report_pages, template_pages, user_pages
from mailbot.web.app import Web, csrf_token, page, public
from mailbot.web.clock import time_left_colour, time_left_words

# The refusals come from the functions the command line calls, and some end by saying
# which command to type next; in the console, where to click instead.
CONSOLE_WORDS = (
    (re.compile(r"write the reply in the file, or approve without --edit to send the draft "
                r"as it is \(mailbot drafts show \d+\)"),
     "write the reply in the box, or reload the page to send the draft as it was written"),
    (re.compile(r"Redraft it: mailbot drafts redraft \d+ --by NAME"),
     "Redraft it with 'Redraft for the consent in force now', below"),
    (re.compile(r"record it: mailbot concerns respond \S+ --by NAME --method phone"),
     "record it under 'Record a response made another way' on the concern"),
)


# The reply templates a refusal names, in words.
TEMPLATE_WORDS = {
    "ack_no_consent": "the acknowledgement without consent",
    "ack_consent": "the acknowledgement with consent",
    "ack_restricted": "the acknowledgement to a restricted contact",
    "ack_unverified": "the acknowledgement to an unverified sender",
}
TEMPLATE_NAME = re.compile(r"\b(" + "|".join(TEMPLATE_WORDS) + r")\b")


def said(exc: Exception) -> str:
    """A refusal in the console's words: buttons instead of commands, templates in
    words, a capital letter to start."""
    text = str(exc)
    for pattern, words in CONSOLE_WORDS:
        text = pattern.sub(words, text)
    text = TEMPLATE_NAME.sub(lambda m: TEMPLATE_WORDS[m.group(1)], text)
    return text[:1].upper() + text[1:]


def _back(path: str, notice: str, request: Request) -> Response:
    request.session["notice"] = notice
    return RedirectResponse(path, 303)


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


# --- Signing in -----------------------------------------------------------------------------

@public
async def sign_in_page(request: Request) -> Response:
    if request.app.state.oidc is not None:  # the provider's address, for the page's CSP
        await run_in_threadpool(request.app.state.oidc.prefetch)
    return request.app.state.web.render(request, "sign_in.html", error=None)


@public
async def sign_in(request: Request) -> Response:
    web: Web = request.app.state.web
    form = await _form(request)
    expected = request.session.get("csrf")
    if not expected or form.get("csrf_token") != expected:
        return Response("the form's security token is missing or out of date: reload the "
                        "sign-in page", 403)
    if not web.config.web.local_accounts:  # [web.oidc] local_accounts = false
        return web.render(request, "sign_in.html", 403, error=(
            "Signing in with a name and password is switched off here: use Sign in with "
            "Microsoft."))

    # One computer trying many names is stopped before any password is checked.
    throttle = request.app.state.throttle
    address = request.client.host if request.client else "unknown"
    until = throttle.blocked_until(address, utcnow())
    if until is not None:
        return web.render(request, "sign_in.html", 429, error=(
            "Too many wrong sign-ins from this computer. Try again after "
            f"{web.templates.filters['local'](until)}, or ask an admin."))

    def check() -> accounts.SignIn:
        with web.sessions() as session:
            outcome = accounts.authenticate(session, web.config.web, form.get("name", ""),
                                            form.get("password", ""))
            if not outcome.ok and throttle.failed(address, utcnow()):
                record_event(session, actor=MAILBOT, action="sign_in_throttled",
                             detail={"address": address, "attempts": throttle.limit})
            session.commit()
            return outcome

    outcome = await run_in_threadpool(check)
    if not outcome.ok:
        message = ("This account is locked after too many wrong passwords. Try again later "
                   "or ask an admin to reset it." if outcome.reason == "locked"
                   else "The name or password is not right.")
        return web.render(request, "sign_in.html", 400, error=message)
    request.session.clear()  # a new session on signing in: no fixation
    request.session.update(user=outcome.user.id, since=utcnow().timestamp())
    csrf_token(request)
    target = request.query_params.get("next", "/queue")
    return RedirectResponse(target if target.startswith("/") and not target.startswith("//")
                            else "/queue", 303)


@page("officer")
async def sign_out(request: Request, web: Web, user: User) -> Response:
    request.session.clear()
    return RedirectResponse("/sign-in", 303)


@page("officer")
async def home(request: Request, web: Web, user: User) -> Response:
    return RedirectResponse("/queue", 303)


# --- The queue ------------------------------------------------------------------------------

def open_concerns() -> Any:
    """The open concerns, as `deadlines.is_open` says (the indexed columns first)."""
    return (select(Contact).where(Contact.responded_at.is_(None))
            .where(Contact.status != ContactStatus.CLOSED)
            .where(Contact.is_safer_custody.is_(True))
            .where(Contact.related_contact_id.is_(None)))


@page("officer")
async def queue(request: Request, web: Web, user: User) -> Response:
    params = request.query_params
    urgency, category = params.get("urgency", ""), params.get("category", "")
    wing, state = params.get("wing", "").strip(), params.get("status", "")
    try:
        number = max(1, int(params.get("page", "1")))
    except ValueError:
        number = 1
    size = web.config.web.page_size
    query = open_concerns()
    if urgency in URGENCIES:
        query = query.where(Contact.urgency == urgency)
    if category in CATEGORIES:
        query = query.where(cast(Contact.categories, String).like(f'%"{category}"%'))
    if wing:
        query = query.where(func.lower(Contact.location) == wing.lower())
    if state == "awaiting":
        query = query.where(Contact.drafts.any(Draft.status == drafts.Status.DRAFT))
    elif state == "approved":
        query = query.where(Contact.drafts.any(Draft.status == drafts.Status.APPROVED))
    rank = case({u: -r for u, r in RANK.items()}, value=Contact.urgency, else_=0)
    now = utcnow()
    with web.sessions() as session:
        total = session.scalar(query.with_only_columns(func.count(Contact.id)))
        # The page's ids first, sorting only the ids and their keys, then those rows
        # whole: sorting every open concern's whole row cost most of a deep page's time.
        order = ((Contact.received_at, Contact.id) if params.get("sort") == "time"
                 else (rank, Contact.received_at, Contact.id))
        ids = session.execute(query.with_only_columns(Contact.id).order_by(*order)
                              .offset((number - 1) * size).limit(size)).scalars().all()
        position = {contact_id: n for n, contact_id in enumerate(ids)}
        found = sorted(session.execute(
            select(Contact).where(Contact.id.in_(ids))
            .options(selectinload(Contact.drafts).selectinload(Draft.email))
        ).scalars().all(), key=lambda c: position[c.id])
        consents = consent.for_contacts(session, list(found), now)
        rows = [_queue_row(web, c, consents[c.id], now) for c in found]
    pages = max(1, -(-total // size))
    return web.render(request, "queue.html", rows=rows, total=total, page=number,
                      pages=pages, urgencies=URGENCIES, categories=CATEGORIES,
                      chosen={"urgency": urgency, "category": category, "wing": wing,
                              "status": state, "sort": params.get("sort", "")})


def _queue_row(web: Web, contact: Contact, state: consent.ConsentState,
               now: Any) -> dict[str, Any]:
    left = hours_left(contact, web.config, now)
    approved = [d for d in contact.drafts if d.status == drafts.Status.APPROVED]
    waiting = [d for d in contact.drafts if d.status == drafts.Status.DRAFT]
    return {
        "contact": contact, "left": left, "when": time_left_words(left),
        "colour": time_left_colour(left),
        "consent": state.scope,
        "persistent": "persistent_contact" in contact.flags,
        "state": (drafts.state_of(approved[0]) if approved else
                  "awaiting approval" if waiting else "no open draft"),
    }


# --- A concern ------------------------------------------------------------------------------

@page("officer")
async def concern(request: Request, web: Web, user: User, error: str | None = None,
                  status_code: int = 200) -> Response:
    reference = request.path_params["reference"]
    now = utcnow()
    with web.sessions() as session:
        try:
            contact = casework.find(session, reference)
        except casework.CaseworkError as exc:
            return web.render(request, "not_found.html", 404, what=str(exc))
        left = hours_left(contact, web.config, now)
        events = session.execute(select(AuditEvent).where(AuditEvent.contact_id == contact.id)
                                 .order_by(AuditEvent.at, AuditEvent.id)).scalars().all()
        replies = session.execute(select(Contact).where(
            Contact.related_contact_id == contact.id).order_by(Contact.id)).scalars().all()
        context = {
            "contact": contact, "left": left, "when": time_left_words(left),
            "colour": time_left_colour(left), "due": due_by(contact, web.config),
            "open": contact.responded_at is None and contact.status != ContactStatus.CLOSED,
            "consent": consent.for_contact(session, contact).scope,
            "drafts": [(d, drafts.state_of(d)) for d in contact.drafts],
            "actions": list(contact.actions), "events": events, "replies": replies,
            "emails": list(contact.emails), "kinds": casework.ACTION_KINDS,
            "departments": casework.DEPARTMENTS, "error": error,
            "contact_key": (contact.submitter_email or
                            f"{contact.submitter_name}|{contact.submitter_phone}"),
        }
        return web.render(request, "concern.html", status_code, **context)


@page("officer")
async def concern_raw(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        try:
            contact = casework.find(session, request.path_params["reference"])
        except casework.CaseworkError as exc:
            return web.render(request, "not_found.html", 404, what=str(exc))
        raw = (contact.message.raw or b"").decode("utf-8", "replace")
        return web.render(request, "raw.html", title=contact.reference, raw=raw,
                          back=f"/concerns/{contact.reference}")


async def _casework(request: Request, web: Web, user: User, apply: Any, done: str) -> Response:
    reference = request.path_params["reference"]
    form = await _form(request)

    def run() -> None:
        with web.sessions() as session:
            contact = casework.find(session, reference)
            apply(session, contact, form)
            session.commit()

    try:
        await run_in_threadpool(run)
    except RefusedError as exc:
        return await concern.__wrapped__(request, web, user, error=said(exc), status_code=400)
    return _back(f"/concerns/{reference}", done, request)


@page("officer")
async def concern_action(request: Request, web: Web, user: User) -> Response:
    def apply(session: Any, contact: Contact, form: dict[str, str]) -> None:
        casework.record_action(session, contact, kind=form.get("kind", ""), by=user.name,
                               note=form.get("note", ""), outcome=form.get("outcome", ""),
                               department=form.get("department") or None)

    return await _casework(request, web, user, apply, "Action recorded")


@page("officer")
async def concern_respond(request: Request, web: Web, user: User) -> Response:
    def apply(session: Any, contact: Contact, form: dict[str, str]) -> None:
        method = form.get("method", "")
        if method not in ("phone", "email", "letter", "in_person"):
            raise casework.CaseworkError("choose how the family was answered")
        record_phone_response(session, contact, by=user.name, method=method,
                              note=form.get("note", ""))

    return await _casework(request, web, user, apply, "Response recorded")


@page("officer")
async def concern_close(request: Request, web: Web, user: User) -> Response:
    def apply(session: Any, contact: Contact, form: dict[str, str]) -> None:
        casework.close(session, contact, by=user.name, outcome=form.get("outcome", ""))

    return await _casework(request, web, user, apply, "Concern closed")


# --- Drafts ---------------------------------------------------------------------------------

@page("officer")
async def draft_list(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        rows = [(d, drafts.state_of(d)) for d in drafts.pending(session)]
        for d, _ in rows:
            _ = d.contact.reference
        return web.render(request, "drafts.html", rows=rows)


@page("officer")
async def draft_page(request: Request, web: Web, user: User, error: str | None = None,
                     status_code: int = 200, text: str | None = None) -> Response:
    with web.sessions() as session:
        draft = session.get(Draft, _int(request.path_params["draft_id"]))
        if draft is None:
            return web.render(request, "not_found.html", 404, what="no such draft")
        return web.render(request, "draft.html", status_code, draft=draft,
                          state=drafts.state_of(draft), error=error,
                          text=draft.body_text if text is None else text,
                          unfilled=drafts.unfilled_markers(draft.body_text),
                          contact=draft.contact)


@page("officer")
async def draft_html(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        draft = session.get(Draft, _int(request.path_params["draft_id"]))
        if draft is None or not draft.body_html:
            return web.render(request, "not_found.html", 404, what="no HTML part")
        html = draft.body_html
    # The email's own HTML, shown alone and sandboxed: no script, nothing fetched.
    return Response(html, media_type="text/html", headers={
        "content-security-policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
                                   "img-src data:; frame-ancestors 'none'"})


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


@page("officer")
async def draft_approve(request: Request, web: Web, user: User) -> Response:
    from mailbot.mailbox.fetch import Mailbox
    from mailbot.replies.outbox import Status

    draft_id = _int(request.path_params["draft_id"])
    form = await _form(request)
    text = form.get("text", "").replace("\r\n", "\n")

    def run() -> str:
        config, sessions = web.config, web.sessions
        with sessions() as session:
            draft = session.get(Draft, draft_id)
            original = draft.body_text.replace("\r\n", "\n") if draft else ""
            edited = None if text.rstrip("\n") == original.rstrip("\n") else text
            approval = drafts.approve(session, config, draft_id, by=user.name,
                                      edited_text=edited)
            session.commit()
            reference, email_id = approval.draft.contact.reference, approval.email.id
        status, error = drafts.send_approved(config, sessions, email_id,
                                             lambda: Mailbox.connect(config.mailbox))
        if status == Status.SENT:
            return f"Draft {draft_id} approved for {reference} and sent"
        if status in (Status.FAILED, Status.SUPPRESSED):
            return (f"Draft {draft_id} approved for {reference}, but not sent: {error}. "
                    f"Reply another way and record the response on the concern.")
        return (f"Draft {draft_id} approved for {reference} and queued: it will be sent "
                f"when the mail server answers")

    try:
        notice = await run_in_threadpool(run)
    except RefusedError as exc:
        return await draft_page.__wrapped__(request, web, user, error=said(exc),
                                            status_code=400, text=text)
    return _back(f"/drafts/{draft_id}", notice, request)


@page("officer")
async def draft_reject(request: Request, web: Web, user: User) -> Response:
    draft_id = _int(request.path_params["draft_id"])
    form = await _form(request)
    try:
        with web.sessions() as session:
            drafts.reject(session, draft_id, by=user.name, reason=form.get("reason", ""))
            session.commit()
    except RefusedError as exc:
        return await draft_page.__wrapped__(request, web, user, error=said(exc),
                                            status_code=400)
    return _back(f"/drafts/{draft_id}", f"Draft {draft_id} rejected", request)


@page("officer")
async def draft_redraft(request: Request, web: Web, user: User) -> Response:
    draft_id = _int(request.path_params["draft_id"])
    try:
        with web.sessions() as session:
            new = drafts.redraft(session, web.config, draft_id, by=user.name)
            session.commit()
            new_id, template = new.id, new.template
    except RefusedError as exc:
        return await draft_page.__wrapped__(request, web, user, error=said(exc),
                                            status_code=400)
    return _back(f"/drafts/{new_id}", f"Draft {draft_id} superseded by draft {new_id} "
                 f"({template})", request)


# --- Consent, quarantine, health, audit -----------------------------------------------------

@page("officer")
async def consent_page(request: Request, web: Web, user: User, error: str | None = None,
                       status_code: int = 200) -> Response:
    prisoner = request.query_params.get("prisoner") or None
    with web.sessions() as session:
        try:
            records = consent.listing(session, prisoner)
        except RefusedError as exc:
            records, error = [], str(exc)
        return web.render(request, "consent.html", status_code, records=records, error=error,
                          scopes=consent.SCOPES, prefill=dict(request.query_params))


@page("officer")
async def consent_record(request: Request, web: Web, user: User) -> Response:
    what = request.path_params["what"]
    form = await _form(request)
    common = {"prisoner": form.get("prisoner", ""), "contact": form.get("contact", ""),
              "by": user.name, "note": form.get("note", "")}
    try:
        with web.sessions() as session:
            if what == "grant":
                consent.grant(session, scope=form.get("scope", ""), **common)
                done = f"Consent '{form.get('scope')}' recorded"
            elif what == "withdraw":
                done = f"Consent withdrawn ({consent.withdraw(session, **common)} record(s))"
            elif what == "restrict":
                consent.restrict(session, **common)
                done = "Restricted contact recorded"
            else:
                return web.render(request, "not_found.html", 404, what="no such action")
            session.commit()
    except RefusedError as exc:
        return await consent_page.__wrapped__(request, web, user, error=said(exc),
                                              status_code=400)
    return _back("/consent", done, request)


@page("officer")
async def quarantine_list(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        messages = session.execute(
            select(StoredMessage).where(StoredMessage.disposition == Disposition.QUARANTINED)
            .order_by(StoredMessage.id.desc()).limit(500)).scalars().all()
        return web.render(request, "quarantine.html", messages=messages)


@page("officer")
async def quarantine_message(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        message = session.get(StoredMessage, _int(request.path_params["message_id"]))
        if message is None:
            return web.render(request, "not_found.html", 404, what="no such message")
        return web.render(request, "raw.html", title=f"Message {message.id}",
                          raw=(message.raw or b"").decode("utf-8", "replace"),
                          back="/quarantine", message=message)


@page("officer")
async def quarantine_replay(request: Request, web: Web, user: User) -> Response:
    from mailbot.ingest import quarantine
    from mailbot.ingest.pipeline import Pipeline

    message_id = _int(request.path_params["message_id"])

    def run() -> str:
        pipeline = Pipeline(web.config, web.sessions)
        with web.sessions() as session:
            done = quarantine.replay(session, web.config, pipeline.rules, message_id,
                                     by=user.name)
            session.commit()
        if done.still_unreadable:
            return f"Message {message_id} is still unreadable: {done.reason}"
        try:
            moved = quarantine.move_out_of_quarantine(web.config, done.message)
        except Exception:  # noqa: BLE001 - the mailbox copy can be moved by hand
            moved = False
        pipeline.send()
        return (f"Message {message_id} replayed: {done.disposition}"
                + (f" as {done.reference}" if done.reference else "")
                + ("; moved to the processed folder" if moved else ""))

    try:
        notice = await run_in_threadpool(run)
    except RefusedError as exc:
        notice = said(exc)
    return _back("/quarantine", notice, request)


@page("officer")
async def health_page(request: Request, web: Web, user: User) -> Response:
    from mailbot.db.models import MailboxState
    from mailbot.service import health

    report = await run_in_threadpool(health.status, web.config, web.sessions)
    with web.sessions() as session:
        folders = session.execute(select(MailboxState).order_by(MailboxState.folder)).scalars()
        return web.render(request, "health.html", report=report, folders=list(folders))


@page("manager")
async def audit_page(request: Request, web: Web, user: User) -> Response:
    with web.sessions() as session:
        events = session.execute(select(AuditEvent).order_by(AuditEvent.id.desc())
                                 .limit(200)).scalars().all()
        return web.render(request, "audit.html", events=events)


ROUTES = (
    ("/sign-in", sign_in_page, ["GET"]),
    ("/sign-in", sign_in, ["POST"]),
    ("/sign-out", sign_out, ["POST"]),
    ("/", home, ["GET"]),
    ("/queue", queue, ["GET"]),
    ("/concerns/{reference}", concern, ["GET"]),
    ("/concerns/{reference}/raw", concern_raw, ["GET"]),
    ("/concerns/{reference}/action", concern_action, ["POST"]),
    ("/concerns/{reference}/respond", concern_respond, ["POST"]),
    ("/concerns/{reference}/close", concern_close, ["POST"]),
    ("/drafts", draft_list, ["GET"]),
    ("/drafts/{draft_id}", draft_page, ["GET"]),
    ("/drafts/{draft_id}/html", draft_html, ["GET"]),
    ("/drafts/{draft_id}/approve", draft_approve, ["POST"]),
    ("/drafts/{draft_id}/reject", draft_reject, ["POST"]),
    ("/drafts/{draft_id}/redraft", draft_redraft, ["POST"]),
    ("/consent", consent_page, ["GET"]),
    ("/consent/{what}", consent_record, ["POST"]),
    ("/quarantine", quarantine_list, ["GET"]),
    ("/quarantine/{message_id}", quarantine_message, ["GET"]),
    ("/quarantine/{message_id}/replay", quarantine_replay, ["POST"]),
    ("/health", health_page, ["GET"]),
    ("/audit", audit_page, ["GET"]),
) + template_pages.ROUTES + user_pages.ROUTES + report_pages.ROUTES + oidc_pages.ROUTES
