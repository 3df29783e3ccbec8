"""The template policy decides whether a template may be used, and so what it may say.

`templates/replies/policy.toml` declares, for each template, the variables it may use and
the least consent under which mailbot sends it; variables that name or locate the
prisoner are allowed only where the prisoner consented (GOV.UK Notify's "templates as
data with a contract"). This module holds that contract to account:

* `check_templates()` parses every template file in effect (the override directory wins
  per file), follows includes and imports, and lists each `Problem`: a syntax error, a
  variable the policy does not declare, an identifying variable where consent forbids
  it, a file with no policy entry, an entry with missing files.
* `render_acknowledgement()` renders a template only if its current files pass. If an
  edit breaks them, the last version that passed in this process is used instead and
  the rejection is reported by `rejected_templates()`, so a concern is never left
  without a draft and staff can be told. The template is given only the variables it
  declares: a template without consent never even receives the prisoner's name.
* `preview()` renders the current files with sample (fictional) values, for admins.
* `unfilled_markers()` finds the `[[STAFF: ...]]` places a draft still has.

Templates that may name a prisoner live apart, in `templates/replies/consented/`, so
anyone editing wording sees which files can. Reply templates are given the prison's
settings with the staff-only `duty_phone` blank. The policy file itself is read only from
the shipped templates: an override directory may change wording, not the contract.

Edits are picked up without a restart: every render checks the files as they are on disk
now, with per-file results cached by (path, mtime_ns, size) so an unchanged file is not
parsed again. Rendering uses exactly the source text that was checked.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from mailbot.config import PrisonSettings, describe_validation_error
from mailbot.logs import event
from mailbot.replies.consent import Scope
from mailbot.replies.render import (
    SHIPPED_TEMPLATES,
    RenderedEmail,
    TemplateError,
    format_london_time,
    one_line_subject,
    render_file,
    sandbox_environment,
    template_dirs,
)

log = logging.getLogger(__name__)

POLICY_NAME = "replies/policy.toml"
POLICY_FILE = SHIPPED_TEMPLATES / POLICY_NAME
CONSENTED_DIR = "consented"  # templates/replies/consented/: the only files that may name a prisoner

# Least protective last. A template's consent is the least under which mailbot sends it.
CONSENT_LEVELS: tuple[Scope, ...] = (Scope.RESTRICTED, Scope.NONE, Scope.WELLBEING, Scope.FULL)
IDENTIFYING_ALLOWED: frozenset[Scope] = frozenset({Scope.WELLBEING, Scope.FULL})

# The floor under policy.toml's [identifying] list: an edit of the list can add to it,
# never take these away.
IDENTIFYING_VARIABLES: frozenset[str] = frozenset(
    {"prisoner_name", "prisoner_number", "prisoner_location", "prisoner_dob", "establishment"}
)

# Which consent mailbot sends each acknowledgement under (mailbot/replies/drafts.py chooses).
# policy.toml must agree; if it does not, the stricter level is applied and the
# template is rejected until the two agree.
ACKNOWLEDGEMENTS: dict[str, Scope] = {
    "ack_no_consent": Scope.NONE,
    "ack_restricted": Scope.RESTRICTED,
    "ack_unverified": Scope.NONE,
    "ack_consent": Scope.WELLBEING,
}
# Every template mailbot's code renders: the policy must have an entry for each.
REQUIRED_ENTRIES: dict[str, tuple[str, ...]] = {
    "templates": ("signposting", *ACKNOWLEDGEMENTS),
    "alerts": ("urgent", "deadline_digest", "persistent_contact"),
}
# Settings only staff may see: reply templates are given them blank.
STAFF_ONLY_PRISON_SETTINGS: tuple[str, ...] = ("duty_phone",)

PARTS_REQUIRED: tuple[str, ...] = ("subject", "txt")
PARTS: tuple[str, ...] = ("subject", "txt", "html")
_TEMPLATE_FILE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<part>subject|txt|html)\.j2$"
)
_PARTIAL_FILE = re.compile(r"^_[A-Za-z0-9_-]+\.j2$")
_MARKER = re.compile(r"\[\[\s*STAFF\b[^\n]*?(?:\]\]|$)", re.IGNORECASE | re.MULTILINE)
_KINDS: tuple[str, ...] = ("templates", "alerts")  # the tables of policy.toml


@dataclass(frozen=True)
class Problem:
    """One reason a template file may not be used, in words an admin can act on."""

    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Entry:
    """One template's contract, as read from policy.toml."""

    kind: str  # "templates" (replies to the public) or "alerts" (staff only)
    name: str
    consent: Scope | None  # None for alerts
    variables: frozenset[str]

    @property
    def folder(self) -> str:
        """Where the template's files live, relative to a templates directory."""
        if self.kind == "alerts":
            return "alerts/"
        if self.consent in IDENTIFYING_ALLOWED:
            return f"replies/{CONSENTED_DIR}/"
        return "replies/"

    @property
    def may_identify(self) -> bool:
        return self.kind == "alerts" or self.consent in IDENTIFYING_ALLOWED


@dataclass(frozen=True)
class StoredTemplate:
    """One template's wording from the database (mailbot/replies/versions.py): every
    part of it, standing in for that template's files. A part it lacks is not sent (no
    "html": the text part only), never filled from the files."""

    kind: str
    name: str
    number: int
    parts: tuple[tuple[str, str], ...]  # (part, text); "subject" and "txt" always

    def part(self, part: str) -> str | None:
        return dict(self.parts).get(part)


# (kind, name) -> the live stored version of that template, from `versions.live`.
LiveTemplates = Mapping[tuple[str, str], StoredTemplate]


@dataclass(frozen=True)
class _StoredFile:
    """A stored version's part where the check expects a file: its text, and how a
    problem names it."""

    name: str  # as the file would be called, e.g. "ack_no_consent.txt.j2"
    label: str  # e.g. "ack_no_consent version 3 (txt part)"
    text: str

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Examination:
    """What the check says of one template as it would be used: its problems, the
    variables it may use, and those its parts (and what they include) do use."""

    entry: Entry
    problems: tuple[Problem, ...]
    allowed: frozenset[str]
    used: frozenset[str]

    @property
    def unknown(self) -> frozenset[str]:
        return self.used - self.allowed


@dataclass(frozen=True)
class Policy:
    identifying: frozenset[str]
    entries: dict[tuple[str, str], Entry]  # (kind, name) -> entry
    problems: tuple[Problem, ...]  # about the file as a whole
    # (kind, name) -> problems with that entry; present even when the entry is unusable
    entry_problems: dict[tuple[str, str], tuple[Problem, ...]]


@dataclass(frozen=True)
class _FileFacts:
    """What one template file says about itself; depends only on its text."""

    text: str
    syntax: Problem | None
    variables: dict[str, int | None]  # undeclared variable -> first line using it
    references: tuple[str | None, ...]  # included/imported templates; None = chosen at run time
    internal: tuple[tuple[str, int], ...]  # "_private" attributes reached for, with line
    # (variable, attribute, line), e.g. ("prison", "duty_phone", 3)
    attributes: frozenset[tuple[str, str, int]]


@dataclass(frozen=True)
class _Version:
    """A set of template sources that passed the check together, with their contract."""

    entry: Entry
    identifying: frozenset[str]
    parts: dict[str, str]  # part -> template name; "html" absent when there is none
    sources: tuple[tuple[str, str, str], ...]  # (template name, text, filename)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    facts: dict[Path, tuple[int, int, _FileFacts]] = field(default_factory=dict)
    policy: tuple[tuple[Path, int, int], Policy] | None = None
    last_good: dict[tuple[tuple[Path, ...], str], _Version] = field(default_factory=dict)
    rejected: dict[tuple[tuple[Path, ...], str], tuple[Problem, ...]] = field(
        default_factory=dict
    )
    # (dirs, name, kinds) -> (the files on disk and the policy it was made from, result)
    examined: dict[tuple[Any, ...], tuple[tuple[Any, ...], _Examined]] = field(
        default_factory=dict
    )


_state = _State()
# Only for parsing: the same lexer settings as rendering, so line numbers and blocks agree.
_parser = sandbox_environment(jinja2.DictLoader({}))


# --- the public surface -------------------------------------------------------------------


def check_templates(
    override_dir: Path | None = None, live: LiveTemplates | None = None
) -> list[Problem]:
    """Every problem with the templates in effect (override first, then shipped, and the
    LIVE versions from the database where there are any); [] if none."""
    dirs = template_dirs(override_dir)
    files = _effective_files(dirs)
    policy = _load_policy()
    problems: list[Problem] = list(policy.problems)
    for directory in dirs[:-1]:
        stray = directory / POLICY_NAME
        if stray.is_file():
            problems.append(
                Problem(
                    _display(stray),
                    "ignored: the template policy cannot be overridden; an override "
                    f"directory may change wording only (edit {_display(POLICY_FILE)})",
                )
            )

    for found in policy.entry_problems.values():
        problems.extend(found)
    used_by_entries: set[str] = set()
    for entry in policy.entries.values():
        for part in PARTS:
            used_by_entries.add(f"{entry.folder}{entry.name}.{part}.j2")
        stored = (live or {}).get((entry.kind, entry.name))
        examined = _examine(entry, policy, files, dirs, stored)
        problems.extend(examined.problems)
        problems.extend(examined.unused)

    for template_name, path in files.items():
        problems.extend(_file_problems(path, _facts(path)))
        if template_name not in used_by_entries:
            problems.extend(_unclaimed(template_name, path, policy))
    return list(dict.fromkeys(problems))


def render_acknowledgement(
    name: str,
    context: Mapping[str, Any],
    *,
    override_dir: Path | None = None,
    live: LiveTemplates | None = None,
) -> RenderedEmail:
    """Render reply template NAME with only the variables policy.toml allows it.

    The current files are used if they pass the check; otherwise the last version that
    passed in this process is, and `rejected_templates()` reports why. Raises
    `TemplateError` when there is no such version, or when the template fails as it runs.
    """
    return _render_checked(name, context, override_dir, ("templates",), live)


def render_alert(
    name: str,
    context: Mapping[str, Any],
    *,
    override_dir: Path | None = None,
    live: LiveTemplates | None = None,
) -> RenderedEmail:
    """Render staff alert NAME (`templates/alerts/`, `[alerts.NAME]`) as
    `render_acknowledgement` renders a reply: checked, given only its declared
    variables, the last good version standing in for a broken edit."""
    return _render_checked(name, context, override_dir, ("alerts",), live)


def _render_checked(
    name: str,
    context: Mapping[str, Any],
    override_dir: Path | None,
    kinds: tuple[str, ...],
    live: LiveTemplates | None = None,
) -> RenderedEmail:
    """The one way a template becomes an email: its live stored version when LIVE has
    one, else its files in effect; checked; the last good version if that fails (and
    for a stored version, failing that, the files)."""
    dirs = tuple(template_dirs(override_dir))
    key = (dirs, name)
    examined = _examine_name(name, dirs, kinds=kinds, live=live)
    files_version = None
    if examined.version is None and any((kind, name) in (live or {}) for kind in kinds):
        files_version = _examine_name(name, dirs, kinds=kinds).version
    first_time = False
    with _state.lock:
        if examined.version is not None:
            version = examined.version
            _state.last_good[key] = version
            _state.rejected.pop(key, None)
        else:
            fallback = _state.last_good.get(key) or files_version
            if fallback is None:
                raise TemplateError(
                    f"template {name} cannot be used and no version of it has passed the "
                    "check since mailbot started: "
                    + "; ".join(str(problem) for problem in examined.problems)
                )
            first_time = _state.rejected.get(key) != examined.problems
            _state.rejected[key] = examined.problems
            version = fallback
    if examined.problems and first_time:
        for problem in examined.problems:
            event(log, logging.WARNING, "template_rejected", template=name,
                  problem=str(problem), using="last good version")
    return _render_version(version, context, list(dirs))


def rejected_templates(override_dir: Path | None = None) -> list[Problem]:
    """Problems with edited templates that are being replaced by their last good version,
    for the templates this override directory (or none) selects."""
    dirs = tuple(template_dirs(override_dir))
    with _state.lock:
        found = [
            problem
            for (key_dirs, _name), problems in _state.rejected.items()
            if key_dirs == dirs
            for problem in problems
        ]
    return list(dict.fromkeys(found))


def preview(
    name: str,
    context: Mapping[str, Any] | None = None,
    override_dir: Path | None = None,
    live: LiveTemplates | None = None,
) -> RenderedEmail:
    """Render template NAME as its files are now, for an admin to read before it is used.

    Values missing from `context` (all of them when it is None) come from a fictional
    sample. Unlike `render_acknowledgement`, a template that fails the check is an error
    here, never replaced by an older version; a preview changes no state.
    """
    dirs = tuple(template_dirs(override_dir))
    examined = _examine_name(name, dirs, kinds=("templates", "alerts"), live=live)
    if examined.version is None:
        raise TemplateError(
            f"template {name} fails the check: "
            + "; ".join(str(problem) for problem in examined.problems)
        )
    values = {**sample_context(), **(context or {})}
    return _render_version(examined.version, values, list(dirs))


def unfilled_markers(text: str) -> list[str]:
    """The `[[STAFF: ...]]` places still in a draft, as written; [] when it may be sent.

    Generous on purpose: any case, spaces inside the brackets, and a marker whose closing
    `]]` was deleted all count, so a half-edited place is never sent.
    """
    return [match.group(0).strip() for match in _MARKER.finditer(text)]


def context_for(name: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The values template NAME is given out of `context`, under the policy as it is now.

    Only its declared variables; none that name or locate the prisoner unless its consent
    allows them; `received_at` as UK local time; the prison's staff-only settings blank.
    """
    policy = _load_policy()
    for kind in _KINDS:
        entry = policy.entries.get((kind, name))
        if entry is not None:
            return _filtered(entry, policy.identifying, context)
    raise TemplateError(
        f"no usable entry for a template called {name!r} in {_display(POLICY_FILE)}"
    )


def sample_context() -> dict[str, Any]:
    """Fictional values for every variable any template may use (for previews and tests)."""
    return {
        "reference": "PFH-SC-20260105-0001",
        "prison": PrisonSettings(
            name="HMP Sampletown",
            hotline_phone="01632 960000",
            duty_phone="01632 960001",
            portal_url="https://www.example.org/safer-custody/hmp-sampletown",
            family_service="Sampletown Families Service",
            governor_address="Governor, HMP Sampletown, 1 Sample Road, Sampletown ZZ1 1ZZ",
        ),
        "submitter_name": "Alex Sample",
        "received_at": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        "received": format_london_time(datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        "prisoner_name": "Sam Example",
        "prisoner_number": "Z9999ZZ",
        "prisoner_location": "Sample Wing, cell 0-00",
        "prisoner_dob": "01/01/1990",
        "establishment": "HMP Sampletown",
        "consent_scope": "full",
        "category": "visits",
        "urgency": "threat_to_life",
        "reasons": ["text mentions self-harm (sample)"],
        "source": "portal_form",
        "verified": True,
        "include_text": True,
        "concern_text": "A sample concern: none of this is real.",
        # Staff alerts: the deadline digest and persistent contact.
        "breach": False,
        "count": 1,
        "hours": 72,
        "window_days": 7,
        "entries": [
            {
                "reference": "PFH-SC-20260105-0001",
                "received": format_london_time(datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
                "when": "5.5 hours left",
                "urgency": "urgent",
                "holder": "draft 1 (ack_no_consent) awaiting approval",
                "concern_text": "A sample concern: none of this is real.",
            }
        ],
    }


# --- examining one template ----------------------------------------------------------------


@dataclass(frozen=True)
class _Examined:
    problems: tuple[Problem, ...]
    version: _Version | None  # None unless there are no problems
    # About a file in effect that is not sent, e.g. an overridden HTML part whose text part
    # was not overridden: reported by the check, no reason to refuse the template.
    unused: tuple[Problem, ...] = ()


def _examine_name(
    name: str,
    dirs: tuple[Path, ...],
    kinds: tuple[str, ...] = ("templates",),
    live: LiveTemplates | None = None,
) -> _Examined:
    """Check template NAME as its files (or its live stored version) and the policy are
    now."""
    policy = _load_policy()
    keys = [(kind, name) for kind in kinds]
    entry = next((policy.entries[key] for key in keys if key in policy.entries), None)
    if entry is None:
        # An entry that is missing or broken is a problem like any other: the last good
        # version, if there is one, stands in for it.
        found = [p for key in keys for p in policy.entry_problems.get(key, ())]
        if not found:
            found = list(policy.problems) + [
                Problem(
                    _display(POLICY_FILE),
                    f"has no entry for a template called {name!r} (known: "
                    + ", ".join(sorted(n for (k, n) in policy.entries if k in kinds))
                    + ")",
                )
            ]
        return _Examined(tuple(dict.fromkeys(found)), None)
    on_disk = _template_files(dirs)
    stored = (live or {}).get((entry.kind, name))
    memo_key = (dirs, name, kinds)
    with _state.lock:
        memo = _state.examined.get(memo_key)
    if memo is not None and memo[0] == (on_disk, policy, stored):
        examined = memo[1]
    else:
        examined = _examine(entry, policy, _files_in_effect(on_disk), list(dirs), stored)
        with _state.lock:
            _state.examined[memo_key] = ((on_disk, policy, stored), examined)
    entry_problems = policy.entry_problems.get((entry.kind, name), ())
    if entry_problems:
        return _Examined(tuple(entry_problems) + examined.problems, None)
    return examined


def _examine(
    entry: Entry,
    policy: Policy,
    files: dict[str, Path],
    dirs: list[Path],
    stored: StoredTemplate | None = None,
) -> _Examined:
    """Check one template's files (and everything they include) against its entry; with
    STORED, its parts in place of the template's own files (what they include is still
    read from the files)."""
    if stored is not None:
        files = _with_stored(files, entry, stored)
    problems: list[Problem] = []
    parts: dict[str, str] = {}
    for part in PARTS:
        template_name = f"{entry.folder}{entry.name}.{part}.j2"
        if template_name in files:
            parts[part] = template_name
        elif part in PARTS_REQUIRED:
            problems.append(
                Problem(
                    _display(POLICY_FILE),
                    f"[{entry.kind}.{entry.name}] needs {template_name}, which is in "
                    f"neither {' nor '.join(_display(d) for d in dirs)}"
                    if len(dirs) > 1
                    else f"[{entry.kind}.{entry.name}] needs {template_name}, which is not "
                    f"in {_display(dirs[0])}",
                )
            )
    # The HTML part must come from the same directory as the text part, so the two say the
    # same thing: an override of the text alone goes out without HTML, and an override of
    # the HTML alone is not used (the text's own HTML is).
    unused: list[Problem] = []
    used_files = files
    if "html" in parts and "txt" in parts and stored is None:
        html = parts["html"]
        html_dir = _root_of(files[html], html)
        txt_dir = _root_of(files[parts["txt"]], parts["txt"])
        if html_dir != txt_dir:
            if (txt_dir / html).is_file():
                used_files = {**files, html: txt_dir / html}
            else:
                del parts["html"]
            if dirs.index(html_dir) < dirs.index(txt_dir):
                # An admin's HTML edit that will be ignored: say so, and check it anyway.
                unused.append(
                    Problem(
                        _display(files[html]),
                        f"is not used: an HTML part is sent only beside the text part "
                        f"from the same directory, and {parts['txt']} is not in "
                        f"{_display(html_dir)}",
                    )
                )
                for template_name, facts, path in _closure(html, files, unused):
                    unused.extend(_file_problems(path, facts))
                    unused.extend(
                        _variable_problems(entry, policy, html, template_name, path, facts)
                    )

    sources: dict[str, tuple[str, str]] = {}
    for root in parts.values():
        for template_name, facts, path in _closure(root, used_files, problems):
            sources[template_name] = (facts.text, str(path))
            problems.extend(_file_problems(path, facts))
            problems.extend(_variable_problems(entry, policy, root, template_name, path, facts))
    if problems:
        return _Examined(tuple(dict.fromkeys(problems)), None, tuple(unused))
    version = _Version(
        entry=entry,
        identifying=policy.identifying,
        parts=parts,
        sources=tuple((n, text, filename) for n, (text, filename) in sorted(sources.items())),
    )
    return _Examined((), version, tuple(unused))


def _with_stored(
    files: Mapping[str, Any], entry: Entry, stored: StoredTemplate
) -> dict[str, Any]:
    """FILES with the template's own files replaced by STORED's parts."""
    replaced = dict(files)
    texts = dict(stored.parts)
    for part in PARTS:
        template_name = f"{entry.folder}{entry.name}.{part}.j2"
        if texts.get(part):
            replaced[template_name] = _StoredFile(
                template_name.rpartition("/")[2],
                f"{entry.name} version {stored.number} ({part} part)",
                texts[part],
            )
        else:
            replaced.pop(template_name, None)
    return replaced


def entries() -> list[Entry]:
    """Every usable entry of policy.toml as it is now, replies first, then alerts."""
    policy = _load_policy()
    return sorted(policy.entries.values(), key=lambda e: (_KINDS.index(e.kind), e.name))


def entry_for(kind: str, name: str) -> Entry:
    entry = _load_policy().entries.get((kind, name))
    if entry is None:
        raise TemplateError(f"no template [{kind}.{name}] in {_display(POLICY_FILE)}")
    return entry


def allowed_variables(entry: Entry, identifying: frozenset[str] | None = None) -> frozenset[str]:
    """What ENTRY's template may use: its declared variables, less those that name or
    locate the prisoner where its consent does not allow them."""
    if identifying is None:
        identifying = _load_policy().identifying
    if entry.may_identify:
        return entry.variables
    return entry.variables - identifying


def examine(
    kind: str, name: str, stored: StoredTemplate | None = None,
    override_dir: Path | None = None,
) -> Examination:
    """The check `mailbot templates check` makes, of one template: as STORED (a version
    from the database, or an edit not yet saved) when given, else as its files are."""
    policy = _load_policy()
    entry = policy.entries.get((kind, name))
    if entry is None:
        raise TemplateError(f"no template [{kind}.{name}] in {_display(POLICY_FILE)}")
    dirs = template_dirs(override_dir)
    files: dict[str, Any] = _effective_files(dirs)
    if stored is not None:
        files = _with_stored(files, entry, stored)
    examined = _examine(entry, policy, files, dirs, stored)
    problems = tuple(policy.entry_problems.get((kind, name), ())) + examined.problems
    used: set[str] = set()
    for part in PARTS:
        root = f"{entry.folder}{entry.name}.{part}.j2"
        if root in files:
            for _template_name, facts, _path in _closure(root, files, []):
                used.update(facts.variables)
    return Examination(entry, problems, allowed_variables(entry, policy.identifying),
                       frozenset(used))


def parts_in_effect(entry: Entry, override_dir: Path | None = None) -> dict[str, str]:
    """The text of each part of ENTRY's template as its files are now (override first):
    version 0 of the template, the shipped wording."""
    dirs = template_dirs(override_dir)
    files = _effective_files(dirs)
    found: dict[str, str] = {}
    for part in PARTS:
        template_name = f"{entry.folder}{entry.name}.{part}.j2"
        path = files.get(template_name)
        if path is None:
            continue
        if part == "html" and "txt" in found:
            txt_root = _root_of(files[f"{entry.folder}{entry.name}.txt.j2"],
                                template_name)
            if _root_of(path, template_name) != txt_root:
                path = txt_root / template_name
                if not path.is_file():
                    continue
        found[part] = _facts(path).text
    return found


def partials(override_dir: Path | None = None) -> dict[str, str]:
    """The files other templates include ("_NAME.j2"), as in effect now, by template
    name: they are edited as files, not versioned in the console."""
    files = _effective_files(template_dirs(override_dir))
    return {name: _facts(path).text for name, path in files.items()
            if _PARTIAL_FILE.match(name.rpartition("/")[2])}


def _root_of(path: Path, template_name: str) -> Path:
    """The templates directory PATH was found in, given its template name."""
    return path.parents[template_name.count("/")]


def _closure(
    root: str, files: dict[str, Path], problems: list[Problem]
) -> Iterable[tuple[str, _FileFacts, Path]]:
    """ROOT and every template it includes or imports, however deep, each once."""
    seen: set[str] = set()
    pending = [root]
    while pending:
        template_name = pending.pop()
        if template_name in seen:
            continue
        seen.add(template_name)
        path = files[template_name]
        facts = _facts(path)
        yield template_name, facts, path
        for reference in facts.references:
            if reference is None:
                problems.append(
                    Problem(
                        _display(path),
                        "includes or imports a template whose name is worked out as it "
                        "runs, so the check cannot follow it; name the file literally",
                    )
                )
            elif reference not in files:
                problems.append(
                    Problem(
                        _display(path), f"includes or imports {reference}, which does not exist"
                    )
                )
            else:
                pending.append(reference)


def _file_problems(path: Path, facts: _FileFacts) -> list[Problem]:
    """Problems a file has whoever uses it: syntax, and reaching for sandbox internals."""
    if facts.syntax is not None:
        return [facts.syntax]
    return [
        Problem(
            _display(path),
            f"reaches for {attribute!r}, an internal attribute templates may not use",
            line,
        )
        for attribute, line in facts.internal
    ]


def _variable_problems(
    entry: Entry, policy: Policy, root: str, template_name: str, path: Path, facts: _FileFacts
) -> list[Problem]:
    problems: list[Problem] = []
    via = "" if template_name == root else f" (included by {root})"
    for variable, line in sorted(facts.variables.items()):
        if variable in policy.identifying and not entry.may_identify:
            message = (
                f"uses {variable!r}, which names or locates the prisoner; "
                f"not allowed where consent = {entry.consent}{via}"
            )
        elif variable not in entry.variables:
            message = (
                f"uses {variable!r}, which {_display(POLICY_FILE)} does not declare for "
                f"{entry.name}{via} (declared: {', '.join(sorted(entry.variables))})"
            )
        else:
            continue
        problems.append(Problem(_display(path), message, line))
    if entry.kind == "templates":
        for variable, attribute, line in sorted(facts.attributes):
            if variable == "prison" and attribute in STAFF_ONLY_PRISON_SETTINGS:
                problems.append(
                    Problem(
                        _display(path),
                        f"uses prison.{attribute}, which is for staff only; replies to "
                        f"the public are given it blank{via}",
                        line,
                    )
                )
    return problems


def _unclaimed(template_name: str, path: Path, policy: Policy) -> list[Problem]:
    """Problems with a file no policy entry claims (partials are claimed by inclusion)."""
    folder, _, filename = template_name.rpartition("/")
    folders = ("replies", f"replies/{CONSENTED_DIR}", "alerts")
    if _PARTIAL_FILE.match(filename) and folder in folders:
        return []
    match = _TEMPLATE_FILE.match(filename)
    if match is None or folder not in folders:
        return [
            Problem(
                _display(path),
                "not a file mailbot uses: name templates NAME.subject.j2, NAME.txt.j2 or "
                "NAME.html.j2 (and files they include _NAME.j2) in replies/, "
                f"replies/{CONSENTED_DIR}/ or alerts/",
            )
        ]
    name = match.group("name")
    kind = "alerts" if folder == "alerts" else "templates"
    entry = policy.entries.get((kind, name))
    if entry is None:
        return [
            Problem(
                _display(path),
                f"has no entry [{kind}.{name}] in {_display(POLICY_FILE)}, so nothing "
                "says what it may use",
            )
        ]
    return [
        Problem(
            _display(path),
            f"is in the wrong folder: {name} has consent = {entry.consent} in "
            f"{_display(POLICY_FILE)}, so its files belong in {entry.folder}",
        )
    ]


# --- rendering ---------------------------------------------------------------------------------


def _render_version(
    version: _Version, context: Mapping[str, Any], dirs: list[Path]
) -> RenderedEmail:
    env = _version_environment(version.sources)
    values = _filtered(version.entry, version.identifying, context)
    subject = render_file(env, dirs, version.parts["subject"], values)
    text = render_file(env, dirs, version.parts["txt"], values)
    html = None
    if "html" in version.parts:
        html = render_file(env, dirs, version.parts["html"], values)
    return RenderedEmail(subject=one_line_subject(subject), text=text, html=html)


def _filtered(
    entry: Entry, identifying: frozenset[str], context: Mapping[str, Any]
) -> dict[str, Any]:
    """Only what the entry declares, and never more than its consent allows."""
    values: dict[str, Any] = {}
    for variable, value in context.items():
        if variable not in entry.variables:
            continue
        if variable in identifying and not entry.may_identify:
            continue
        if variable == "received_at" and isinstance(value, datetime):
            value = format_london_time(value)
        if variable == "prison" and entry.kind == "templates":
            value = _public_prison(value)
        values[variable] = value
    return values


def _public_prison(prison: Any) -> Any:
    blank = {name: "" for name in STAFF_ONLY_PRISON_SETTINGS}
    if dataclasses.is_dataclass(prison) and not isinstance(prison, type):
        return dataclasses.replace(prison, **blank)
    if isinstance(prison, Mapping):
        return {**prison, **blank}
    return prison


class _SourceLoader(jinja2.BaseLoader):
    """Serves the exact source text that was checked, never the file as it is now."""

    def __init__(self, sources: tuple[tuple[str, str, str], ...]) -> None:
        self._sources = {name: (text, filename) for name, text, filename in sources}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Any]:
        try:
            text, filename = self._sources[template]
        except KeyError:
            raise jinja2.TemplateNotFound(template) from None
        return text, filename, lambda: True


@lru_cache(maxsize=64)
def _version_environment(
    sources: tuple[tuple[str, str, str], ...],
) -> ImmutableSandboxedEnvironment:
    return sandbox_environment(_SourceLoader(sources))


# --- reading files and the policy -------------------------------------------------------------


def _effective_files(dirs: list[Path]) -> dict[str, Path]:
    """Template name (e.g. "replies/ack_consent.txt.j2") -> the file in effect, override first."""
    return _files_in_effect(_template_files(tuple(dirs)))


# (template name, path, mtime_ns, size) for every template file, each directory in turn
_TemplateFiles = tuple[tuple[str, Path, int, int], ...]


@dataclass
class _OneVersion:
    files: dict[tuple[Path, ...], _TemplateFiles] = field(default_factory=dict)
    policy: Policy | None = None
    live: Any = None  # the live stored versions, once `versions.live` has read them


_one_version: ContextVar[_OneVersion | None] = ContextVar("one_version", default=None)


@contextmanager
def one_version_of_templates() -> Iterator[None]:
    """Within this, template files and the policy are read once, not at every render: a
    batch of messages is answered from one version of the templates (an edit applies
    from the next batch), and a batch of drafts costs one directory listing, not one
    each."""
    token = _one_version.set(_OneVersion())
    try:
        yield
    finally:
        _one_version.reset(token)


def batch_live(read: Any) -> Any:
    """READ() (the live stored versions), once per `one_version_of_templates()`: a batch
    is answered from one version of the database's templates too."""
    fixed = _one_version.get()
    if fixed is None:
        return read()
    if fixed.live is None:
        fixed.live = read()
    return fixed.live


def _template_files(dirs: tuple[Path, ...]) -> _TemplateFiles:
    """Every template file in DIRS with what identifies its version: as it is on disk
    now, or as it was listed when `one_version_of_templates()` began."""
    fixed = _one_version.get()
    if fixed is None:
        return _list_template_files(dirs)
    found = fixed.files.get(dirs)
    if found is None:
        found = fixed.files[dirs] = _list_template_files(dirs)
    return found


def _list_template_files(dirs: tuple[Path, ...]) -> _TemplateFiles:
    # os.scandir's entries carry their type: one stat per file, nothing more.
    found: list[tuple[str, Path, int, int]] = []
    for directory in dirs:
        for folder in ("replies", "alerts"):
            _scan(directory, folder, found)
    return tuple(found)


def _scan(directory: Path, relative: str, found: list[tuple[str, Path, int, int]]) -> None:
    try:
        with os.scandir(directory / relative) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        name = f"{relative}/{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                _scan(directory, name, found)
            elif entry.name.endswith(".j2") and entry.is_file():
                stat = entry.stat()
                found.append((name, Path(entry.path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            continue  # vanished while listed: as if it was never there


def _files_in_effect(on_disk: _TemplateFiles) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name, path, _mtime, _size in on_disk:
        files.setdefault(name, path)
    return files


def _facts(path: Path) -> _FileFacts:
    """The facts about PATH as it is now; parsed again only when it has changed."""
    if isinstance(path, _StoredFile):
        return _stored_facts(path)
    try:
        stat = path.stat()
    except OSError as exc:
        return _unreadable(path, exc)
    with _state.lock:
        cached = _state.facts.get(path)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(path, exc)
    facts = _analyse(text, path)
    with _state.lock:
        _state.facts[path] = (stat.st_mtime_ns, stat.st_size, facts)
    return facts


@lru_cache(maxsize=256)
def _stored_facts(stored: _StoredFile) -> _FileFacts:
    return _analyse(stored.text, stored)  # type: ignore[arg-type]


def _unreadable(path: Path, exc: Exception) -> _FileFacts:
    problem = Problem(_display(path), f"cannot be read: {exc}")
    return _FileFacts("", problem, {}, (), (), frozenset())


def _analyse(text: str, path: Path) -> _FileFacts:
    try:
        tree = _parser.parse(text, path.name, str(path))
        _parser.compile(tree, path.name, str(path))  # unknown filters and tests fail here
    except jinja2.TemplateSyntaxError as exc:
        problem = Problem(_display(path), f"syntax error: {exc.message}", exc.lineno)
        return _FileFacts(text, problem, {}, (), (), frozenset())
    names = meta.find_undeclared_variables(tree) - set(_parser.globals)
    variables: dict[str, int | None] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in names and node.ctx == "load":
            variables.setdefault(node.name, node.lineno)
    for name in names:  # used only in ways find_all does not show, e.g. through a call block
        variables.setdefault(name, None)
    internal: list[tuple[str, int]] = []
    attributes: set[tuple[str, str, int]] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attribute = _attribute_name(node)
        if attribute is None:
            continue
        if attribute.startswith("_"):
            internal.append((attribute, node.lineno))
        if isinstance(node.node, nodes.Name):
            attributes.add((node.node.name, attribute, node.lineno))
    return _FileFacts(
        text=text,
        syntax=None,
        variables=variables,
        references=tuple(meta.find_referenced_templates(tree)),
        internal=tuple(internal),
        attributes=frozenset(attributes),
    )


def _attribute_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return node.arg.value if isinstance(node.arg.value, str) else None
    return None


def _load_policy() -> Policy:
    """policy.toml as it is now (read again only when it has changed), or as it was when
    `one_version_of_templates()` began."""
    fixed = _one_version.get()
    if fixed is None:
        return _read_policy()
    if fixed.policy is None:
        fixed.policy = _read_policy()
    return fixed.policy


def _read_policy() -> Policy:
    try:
        stat = POLICY_FILE.stat()
        stamp = (POLICY_FILE, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        return _broken_policy(f"cannot be read: {exc}")
    with _state.lock:
        if _state.policy is not None and _state.policy[0] == stamp:
            return _state.policy[1]
    try:
        raw = tomllib.loads(POLICY_FILE.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return _broken_policy(f"cannot be read: {exc}")
    except tomllib.TOMLDecodeError as exc:
        return _broken_policy(f"not valid TOML: {exc}")
    policy = _parse_policy(raw)
    with _state.lock:
        _state.policy = (stamp, policy)
    return policy


def _broken_policy(message: str) -> Policy:
    return Policy(IDENTIFYING_VARIABLES, {}, (Problem(_display(POLICY_FILE), message),), {})


class _Identifying(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variables: list[StrictStr] = []


class _ReplyContract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent: Scope
    variables: list[StrictStr] = []


class _AlertContract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variables: list[StrictStr] = []


class _PolicyFile(BaseModel):
    """policy.toml's shape. Each entry is validated on its own (`_CONTRACTS`), so one bad
    entry makes only that template unusable."""

    model_config = ConfigDict(extra="forbid")
    identifying: _Identifying = _Identifying()
    templates: dict[str, Any] = {}
    alerts: dict[str, Any] = {}


_CONTRACTS: dict[str, type[BaseModel]] = {"templates": _ReplyContract, "alerts": _AlertContract}


def _parse_policy(raw: dict[str, Any]) -> Policy:
    here = _display(POLICY_FILE)
    try:
        shape = _PolicyFile.model_validate(raw)
    except ValidationError as exc:
        return _broken_policy("; ".join(describe_validation_error(e) for e in exc.errors()))
    identifying = frozenset(IDENTIFYING_VARIABLES | set(shape.identifying.variables))
    entries: dict[tuple[str, str], Entry] = {}
    entry_problems: dict[tuple[str, str], tuple[Problem, ...]] = {}
    for kind in _KINDS:
        tables: dict[str, Any] = getattr(shape, kind)
        for name, table in tables.items():
            found: list[Problem] = []
            entry = _parse_entry(kind, name, table, identifying, found)
            if entry is not None:
                entries[(kind, name)] = entry
            if found:
                entry_problems[(kind, name)] = tuple(found)
        for name in REQUIRED_ENTRIES[kind]:
            if name not in tables:
                entry_problems[(kind, name)] = (
                    Problem(here, f"has no [{kind}.{name}], which mailbot sends"),
                )
    return Policy(identifying, entries, (), entry_problems)


def _parse_entry(
    kind: str, name: str, table: Any, identifying: frozenset[str], problems: list[Problem]
) -> Entry | None:
    here = _display(POLICY_FILE)
    label = f"[{kind}.{name}]"
    try:
        contract = _CONTRACTS[kind].model_validate(table)
    except ValidationError as exc:
        for error in exc.errors():
            error["loc"] = (kind, name, *error["loc"])
            problems.append(Problem(here, describe_validation_error(error)))
        return None
    variables = frozenset(contract.variables)  # type: ignore[attr-defined]
    if not isinstance(contract, _ReplyContract):
        return Entry(kind, name, None, variables)

    consent = contract.consent
    pinned = ACKNOWLEDGEMENTS.get(name)
    if pinned is not None and consent != pinned:
        problems.append(
            Problem(
                here,
                f"{label} says consent = {consent}, but mailbot sends {name} under "
                f"consent = {pinned} (mailbot/replies/drafts.py); make them agree",
            )
        )
        consent = min(consent, pinned, key=CONSENT_LEVELS.index)
    if consent not in IDENTIFYING_ALLOWED:
        for variable in sorted(variables & identifying):
            problems.append(
                Problem(
                    here,
                    f"{label} declares {variable!r}, which names or locates the prisoner; "
                    f"not allowed where consent = {consent}",
                )
            )
    return Entry(kind, name, consent, variables)


def _display(path: Path) -> str:
    """A path as an admin would type it: relative to the repository for shipped files."""
    if isinstance(path, _StoredFile):
        return path.label
    try:
        return path.relative_to(SHIPPED_TEMPLATES.parent).as_posix()
    except ValueError:
        return str(path)
