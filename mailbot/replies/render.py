"""Rendering decides the exact words of each email mailbot sends, from admin-editable templates.

Templates are Jinja2 files: the shipped ones live in the repository's `templates/`
directory, and an optional override directory (searched first) lets a prison change
wording without touching the installed package, as Mailman's template overrides do.
A template file called `NAME.html.j2` is HTML-escaped automatically; `.txt.j2` and
`.subject.j2` files are plain text.

Safety rules kept here rather than in the templates:

* Templates run in Jinja's immutable sandbox with `StrictUndefined`, so an edited
  template cannot reach Python internals and a misspelt variable fails loudly
  (as `TemplateError`, naming the file) instead of sending a reply with a gap.
* Anything a family wrote (concern text, prisoner number, even our reference, which an
  unverified form can forge) is passed only as data, never compiled as a template.
* The signposting reply is given no prisoner details at all: its function takes none, so
  no template edit can name a prisoner or confirm where anyone is held.
* A subject is always one line of at most 200 characters.

Every template (signposting, acknowledgements, alerts) is checked against
`templates/replies/policy.toml` and rendered by `policy.py` through this sandbox
(`sandbox_environment`) and these helpers: one rendering path. A template's live
version saved in the console (mailbot/replies/versions.py) stands in for its files
there; the callers look it up with `versions.live` and pass it as `live`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailbot.config import PrisonSettings
from mailbot.errors import MailbotError
from mailbot.triage import ENQUIRY_CATEGORIES

# The repository's shipped templates. An installed wheel does not carry this directory
# (package-data only ships mailbot/data/*): such installs must pass `override_dir`
# holding a full set, or the shipped directory must be copied alongside the package.
# The templates shipped with mailbot: inside the package in an installed wheel (setup.py
# copies them there), else the repository's templates/ beside the package.
_PACKAGED = Path(__file__).resolve().parents[1] / "templates"
SHIPPED_TEMPLATES = (
    _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "templates"
)


SUBJECT_MAX_CHARS = 200
LONDON = ZoneInfo("Europe/London")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Every character str.splitlines() breaks on, plus other control characters: none of them
# may survive into a header, where a line break would start a new header.
_SUBJECT_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class TemplateError(MailbotError):
    """A template is missing, malformed, uses an unknown variable or broke the sandbox."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str  # one line: line breaks collapsed to spaces, stripped, at most 200 chars
    text: str
    html: str | None


def template_dirs(override_dir: Path | None = None) -> list[Path]:
    """The directories searched for templates, first match wins: override, then shipped."""
    dirs: list[Path] = []
    if override_dir is not None:
        override = Path(override_dir)
        if not override.is_dir():
            # An admin who set an override expects it to be used: say so rather than
            # silently sending the shipped wording.
            raise TemplateError(f"template override directory {override} does not exist")
        dirs.append(override.resolve())
    dirs.append(SHIPPED_TEMPLATES)
    return dirs


def render_signposting(
    *,
    category: str,
    reference: str,
    prison: PrisonSettings,
    override_dir: Path | None = None,
    live: Any = None,
) -> RenderedEmail:
    """The toolkit's reply to a verified enquiry that is not about safety or wellbeing.

    An unknown `category` is answered as "other". Deliberately takes no prisoner details.
    Rendered as every template is (`policy.render_acknowledgement`): its live version
    from LIVE (`versions.live`) when there is one, else its files, checked.
    """
    from mailbot.replies.policy import render_acknowledgement

    if category not in ENQUIRY_CATEGORIES:
        category = "other"
    return render_acknowledgement(
        "signposting",
        {"category": category, "reference": reference, "prison": prison},
        override_dir=override_dir, live=live,
    )


def render_urgent_alert(
    *,
    reference: str,
    received_at: datetime,
    urgency: str,
    reasons: Sequence[str],
    source: str,
    verified: bool,
    include_text: bool,
    concern_text: str = "",
    prisoner_number: str = "",
    prison: PrisonSettings,
    override_dir: Path | None = None,
    live: Any = None,
) -> RenderedEmail:
    """The safety team's alert for an urgent contact, rendered as every template is
    (`policy.render_alert`, its live version from LIVE when there is one).

    The concern text and prisoner number are given to the template only when
    `include_text` is true; otherwise they are blanked here, so no template edit can
    leak them. A naive `received_at` is taken as UTC (as the database stores it).
    """
    context: dict[str, Any] = {
        "reference": reference,
        "received_at": received_at,
        "received": format_london_time(received_at),
        "urgency": urgency,
        "reasons": [str(reason) for reason in reasons],
        "source": source,
        "verified": verified,
        "include_text": include_text,
        "concern_text": concern_text if include_text else "",
        "prisoner_number": prisoner_number if include_text else "",
        "prison": prison,
    }
    from mailbot.replies.policy import render_alert

    return render_alert("urgent", context, override_dir=override_dir, live=live)


def format_london_time(moment: datetime) -> str:
    """UK local time as staff read it, e.g. "Sat 14 Nov 2026 21:46 GMT" (no locale)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(LONDON)
    return (
        f"{_DAYS[local.weekday()]} {local.day:02d} {_MONTHS[local.month - 1]} "
        f"{local.year} {local:%H:%M} {local.tzname()}"
    )


def one_line_subject(subject: str) -> str:
    """Collapse line breaks and control characters to spaces, strip, cap at 200 chars."""
    line = _SUBJECT_BREAKS.sub(" ", subject).strip()
    if len(line) > SUBJECT_MAX_CHARS:
        line = line[: SUBJECT_MAX_CHARS - 1].rstrip() + "…"
    return line


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html.j2", ".html"))


def sandbox_environment(loader: jinja2.BaseLoader) -> ImmutableSandboxedEnvironment:
    """The one sandbox every template runs in, whatever loader supplies its source.

    `policy.py` renders checked source text through its own loader; sharing this
    function keeps escaping, whitespace and `StrictUndefined` identical everywhere.
    """
    return ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        auto_reload=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_file(
    env: ImmutableSandboxedEnvironment, dirs: list[Path], name: str, context: dict[str, Any]
) -> str:
    """Render one template file, turning every way it can fail into a `TemplateError`."""
    where = " or ".join(str(d) for d in dirs)
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {name} not found in {where}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template {exc.filename or name} line {exc.lineno}: {exc.message}"
        ) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name}: {exc}") from exc
    try:
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:  # in an imported or included template
        raise TemplateError(
            f"template {exc.filename or name} line {exc.lineno}: {exc.message}"
        ) from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(
            f"template {template.filename or name} tried something the sandbox forbids: {exc}"
        ) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {template.filename or name}: {exc}") from exc
    except Exception as exc:  # an admin's template may fail in any way
        raise TemplateError(
            f"template {template.filename or name} failed: {exc.__class__.__name__}: {exc}"
        ) from exc
