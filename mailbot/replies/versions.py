"""Template versions decide which wording of each reply and alert template is live.

The files under `templates/` (or the override directory) are version 0 of every
template, "shipped". An admin saves a new wording in the console as a numbered version
(1, 2, ...) of all of the template's parts, kept in the database (`template_versions`);
a manager approves a version before it is used, and never its own author; a rollback
makes an earlier version (0 included) live again in one step, as an approval of it. The
newest approval of a template (`template_approvals`) is its live version; with none,
the files are.

`live(session)` is the one lookup: drafts, the signposting reply and the staff alerts
pass what it returns to `policy.render_acknowledgement` / `render_alert`, the one
rendering path, which uses a live stored version in place of the template's files and
checks it as it checks them. Every text saved or approved here passes the same check as
`mailbot templates check` first (`policy.examine`): the sandboxed Jinja2 parse, and only
the variables its consent level allows. Every change is in the audit trail.

The outage alerts are not versioned here: they must go out when the database is what
is down, so they are always rendered from their files.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.casework.audit import record_event
from mailbot.config import Config
from mailbot.db.models import Contact, TemplateApproval, TemplateVersion, utcnow
from mailbot.errors import RefusedError
from mailbot.replies import policy
from mailbot.replies.policy import Entry, LiveTemplates, StoredTemplate
from mailbot.replies.render import format_london_time

SHIPPED = 0
# Sent when the database may be unreachable: rendered from the files only.
FILE_ONLY: frozenset[tuple[str, str]] = frozenset({("alerts", "outage"),
                                                   ("alerts", "outage_over")})
MAX_PART_CHARS = 50_000


class VersionError(RefusedError, ValueError):
    """A save, approval or rollback that must not happen; says why."""


# --- the lookup --------------------------------------------------------------------------


def live(session: Session) -> LiveTemplates:
    """The live stored version of every template that has one, by (kind, name); a
    template missing here is rendered from its files. Read once per
    `policy.one_version_of_templates()` batch."""
    return policy.batch_live(lambda: _read_live(session))


def _read_live(session: Session) -> dict[tuple[str, str], StoredTemplate]:
    newest = (select(func.max(TemplateApproval.id))
              .group_by(TemplateApproval.kind, TemplateApproval.name))
    rows = session.execute(
        select(TemplateVersion)
        .join(TemplateApproval, (TemplateApproval.kind == TemplateVersion.kind)
              & (TemplateApproval.name == TemplateVersion.name)
              & (TemplateApproval.number == TemplateVersion.number))
        .where(TemplateApproval.id.in_(newest))
    ).scalars()
    return {(v.kind, v.name): stored(v) for v in rows
            if (v.kind, v.name) not in FILE_ONLY}


def stored(version: TemplateVersion) -> StoredTemplate:
    return wording(version.kind, version.name, version.number, subject=version.subject,
                   text=version.text, html=version.html)


def wording(kind: str, name: str, number: int, *, subject: str, text: str,
            html: str | None) -> StoredTemplate:
    """A template's parts as the check and the renderer take them; a blank HTML part
    is none (the text part only); the subject is one line, without a line break after
    it (a form's text box cannot hold one, and the file's is not sent)."""
    parts = [("subject", _clean(subject).strip("\n")), ("txt", _clean(text))]
    if html is not None and html.strip():
        parts.append(("html", _clean(html)))
    return StoredTemplate(kind, name, number, tuple(parts))


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def live_number(session: Session, kind: str, name: str) -> int:
    """The number of the template's live version: 0 when its files are live."""
    number = session.execute(
        select(TemplateApproval.number).where(TemplateApproval.kind == kind)
        .where(TemplateApproval.name == name).order_by(TemplateApproval.id.desc()).limit(1)
    ).scalar_one_or_none()
    return number or SHIPPED


def live_numbers(session: Session) -> dict[tuple[str, str], int]:
    newest = (select(func.max(TemplateApproval.id))
              .group_by(TemplateApproval.kind, TemplateApproval.name))
    return {(a.kind, a.name): a.number for a in session.execute(
        select(TemplateApproval).where(TemplateApproval.id.in_(newest))).scalars()}


def versions_of(session: Session, kind: str, name: str) -> list[TemplateVersion]:
    """Every saved version of the template, newest first."""
    return list(session.execute(
        select(TemplateVersion).where(TemplateVersion.kind == kind)
        .where(TemplateVersion.name == name).order_by(TemplateVersion.number.desc())
    ).scalars())


def approvals_of(session: Session, kind: str, name: str) -> list[TemplateApproval]:
    """Every approval and rollback of the template, newest first."""
    return list(session.execute(
        select(TemplateApproval).where(TemplateApproval.kind == kind)
        .where(TemplateApproval.name == name).order_by(TemplateApproval.id.desc())
    ).scalars())


def find_version(session: Session, kind: str, name: str, number: int) -> TemplateVersion:
    version = session.execute(
        select(TemplateVersion).where(TemplateVersion.kind == kind)
        .where(TemplateVersion.name == name).where(TemplateVersion.number == number)
    ).scalar_one_or_none()
    if version is None:
        raise VersionError(f"{name} has no version {number}")
    return version


def wording_of(session: Session, entry: Entry, number: int,
               override_dir: Path | None = None) -> StoredTemplate:
    """Version NUMBER of ENTRY's template: from the database, or its files for 0."""
    if number == SHIPPED:
        parts = policy.parts_in_effect(entry, override_dir)
        return wording(entry.kind, entry.name, SHIPPED, subject=parts.get("subject", ""),
                       text=parts.get("txt", ""), html=parts.get("html"))
    return stored(find_version(session, entry.kind, entry.name, number))


def live_wording(session: Session, entry: Entry,
                 override_dir: Path | None = None) -> StoredTemplate:
    return wording_of(session, entry, live_number(session, entry.kind, entry.name),
                      override_dir)


# --- the rules (pure) ---------------------------------------------------------------------


def save_refusal(kind: str, name: str, candidate: StoredTemplate, live_now: StoredTemplate,
                 problems: Iterable[policy.Problem]) -> str | None:
    """Why CANDIDATE may not be saved as a new version, or None."""
    if (kind, name) in FILE_ONLY:
        return (f"{name} is sent when the database may be unreachable, so it is always "
                f"rendered from its file (templates/alerts/{name}.*.j2): edit that instead")
    if not (candidate.part("subject") or "").strip():
        return "the subject is empty: every email needs one"
    if not (candidate.part("txt") or "").strip():
        return "the text part is empty: every email needs one"
    for part, text in candidate.parts:
        if len(text) > MAX_PART_CHARS:
            return f"the {part} part is longer than {MAX_PART_CHARS} characters"
    found = list(problems)
    if found:
        return ("the policy check refuses this wording: "
                + "; ".join(str(problem) for problem in found))
    if candidate.parts == live_now.parts:
        return (f"nothing changed: this is the wording of version {live_now.number}, "
                "which is live")
    return None


def approval_refusal(number: int, author: str | None, live_now: int, by: str,
                     *, rollback: bool = False) -> str | None:
    """Why BY may not make version NUMBER (written by AUTHOR; None for the shipped
    files) live, when LIVE_NOW is; None when they may. The same rule for an approval
    and a rollback: a second person, never the author, makes a wording live."""
    if not by.strip():
        return "an approval must name the member of staff"
    if number == live_now:
        return f"version {number} is already live"
    if rollback and number > live_now:
        return (f"version {number} is newer than the live version {live_now}: approve it "
                "instead of rolling back to it")
    if author is not None and author.strip().casefold() == by.strip().casefold():
        return (f"you wrote version {number}, so you may not approve it: another manager "
                "must, so that a second person reads every wording before families get it")
    return None


def variable_changes(before: Iterable[str], after: Iterable[str]) -> tuple[list[str], list[str]]:
    """The variables an edit adds and removes, each sorted."""
    old, new = set(before), set(after)
    return sorted(new - old), sorted(old - new)


def out_of_step(live_now: StoredTemplate, candidate: StoredTemplate) -> str | None:
    """A warning when the text part changed and the HTML part, still there, did not:
    the two would say different things."""
    html = candidate.part("html")
    if html and html == live_now.part("html") and candidate.part("txt") != live_now.part("txt"):
        return ("The text part changed but the HTML part did not: most mail programs show "
                "the HTML part, so families would read the old wording. Change the HTML "
                "part too, or empty it to send the text part only.")
    return None


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "same" or "where" (a hunk's @@ line)
    text: str


def diff(old: StoredTemplate, new: StoredTemplate) -> list[tuple[str, list[DiffLine]]]:
    """Each part that differs, as unified-diff lines (plain text: the page escapes it)."""
    found: list[tuple[str, list[DiffLine]]] = []
    for part in policy.PARTS:
        before, after = old.part(part) or "", new.part(part) or ""
        if before.splitlines() == after.splitlines():
            continue
        lines: list[DiffLine] = []
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                         f"version {old.number}", f"version {new.number}",
                                         lineterm="", n=2):
            if line.startswith(("---", "+++")):
                continue
            kind = ("where" if line.startswith("@@") else "added" if line.startswith("+")
                    else "removed" if line.startswith("-") else "same")
            lines.append(DiffLine(kind, line))
        found.append((part, lines))
    return found


# --- acting ------------------------------------------------------------------------------


def save(session: Session, kind: str, name: str, *, subject: str, text: str,
         html: str | None, by: str, note: str = "",
         override_dir: Path | None = None) -> TemplateVersion:
    """A new numbered version of the template, checked as `templates check` checks;
    it is not used until a manager approves it."""
    if not by.strip():
        raise VersionError("a version must name its author")
    entry = policy.entry_for(kind, name)
    number_now = live_number(session, kind, name)
    live_now = wording_of(session, entry, number_now, override_dir)
    latest = session.execute(
        select(func.max(TemplateVersion.number)).where(TemplateVersion.kind == kind)
        .where(TemplateVersion.name == name)).scalar_one_or_none() or 0
    candidate = wording(kind, name, latest + 1, subject=subject, text=text, html=html)
    checked = policy.examine(kind, name, candidate, override_dir)
    refusal = save_refusal(kind, name, candidate, live_now, checked.problems)
    if refusal:
        raise VersionError(refusal)
    before = policy.examine(kind, name, live_now, override_dir).used
    added, removed = variable_changes(before, checked.used)
    version = TemplateVersion(
        kind=kind, name=name, number=candidate.number, subject=candidate.part("subject"),
        text=candidate.part("txt"), html=candidate.part("html"), note=note.strip(),
        author=by, created_at=utcnow(), based_on=number_now)
    session.add(version)
    session.flush()
    record_event(session, actor=by, action="template_version_saved", detail={
        "template": name, "kind": kind, "version": version.number, "based_on": number_now,
        "variables_added": added, "variables_removed": removed})
    return version


def approve(session: Session, kind: str, name: str, number: int, *, by: str,
            override_dir: Path | None = None) -> TemplateApproval:
    """Make version NUMBER live (checked again now: the policy may have changed)."""
    return _make_live(session, kind, name, number, by=by, override_dir=override_dir,
                      rollback=False)


def rollback(session: Session, kind: str, name: str, number: int, *, by: str,
             override_dir: Path | None = None) -> TemplateApproval:
    """Make an earlier version live again in one step (0: the shipped files), as an
    approval of it."""
    return _make_live(session, kind, name, number, by=by, override_dir=override_dir,
                      rollback=True)


def _make_live(session: Session, kind: str, name: str, number: int, *, by: str,
               override_dir: Path | None, rollback: bool) -> TemplateApproval:
    entry = policy.entry_for(kind, name)
    if (kind, name) in FILE_ONLY:
        raise VersionError(f"{name} is always rendered from its file")
    live_now = live_number(session, kind, name)
    if number < SHIPPED:
        raise VersionError(f"there is no version {number}")
    version = find_version(session, kind, name, number) if number != SHIPPED else None
    if version is None and not rollback:
        raise VersionError("the shipped wording is made live again by rolling back to it")
    refusal = approval_refusal(number, version.author if version else None, live_now, by,
                               rollback=rollback)
    if refusal:
        raise VersionError(refusal)
    if version is not None:
        problems = policy.examine(kind, name, stored(version), override_dir).problems
        if problems:
            raise VersionError(f"version {number} no longer passes the policy check: "
                               + "; ".join(str(p) for p in problems))
    approval = TemplateApproval(kind=kind, name=name, number=number, approved_by=by,
                                approved_at=utcnow(), rollback=rollback)
    session.add(approval)
    session.flush()
    record_event(session, actor=by,
                 action="template_rolled_back" if rollback else "template_version_approved",
                 detail={"template": name, "kind": entry.kind, "version": number,
                         "previous": live_now,
                         "author": version.author if version else "shipped"})
    return approval


def export(session: Session, directory: Path, override_dir: Path | None = None) -> list[Path]:
    """Write the live wording of every template, and the files they include, to
    DIRECTORY in the layout of templates/ (so that it can serve as an override
    directory); returns the files written."""
    written: list[Path] = []
    numbers = live_numbers(session)
    entries = policy.entries()
    for entry in entries:
        current = wording_of(session, entry, numbers.get((entry.kind, entry.name), SHIPPED)
                             if (entry.kind, entry.name) not in FILE_ONLY else SHIPPED,
                             override_dir)
        for part, text in current.parts:
            path = directory / f"{entry.folder}{entry.name}.{part}.j2"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    for name, source in policy.partials(override_dir).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        written.append(path)
    manifest = directory / "VERSIONS.txt"
    manifest.write_text("".join(
        f"{entry.kind}.{entry.name}: version {numbers.get((entry.kind, entry.name), 0)}\n"
        for entry in entries), encoding="utf-8")
    written.append(manifest)
    return written


def preview_values(session: Session, config: Config, contact: Contact) -> dict[str, Any]:
    """What a template would be given for CONTACT (the policy then hands each template
    only its own): the draft's values, and the urgent alert's."""
    from mailbot.replies import consent, drafts

    state = consent.for_contact(session, contact)
    values = drafts.template_context(contact, config, state.scope)
    values.update(
        received=format_london_time(contact.received_at), urgency=contact.urgency,
        reasons=[str(r) for r in contact.triage_reasons], source=contact.source,
        verified=contact.verified, include_text=config.alerts.include_text,
        concern_text=contact.concern_text if config.alerts.include_text else "",
        prisoner_number=contact.prisoner_number,
    )
    return values
