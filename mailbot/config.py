"""Configuration: one TOML file, validated at start so a bad key fails loudly and by name.

Secrets never live in the file itself: a password is read from `password_file` (for
example a systemd credential) or from the environment variable named by `password_env`.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mailbot.errors import ConfigError

SECURITY_MODES = ("ssl", "starttls", "none")

# The portal's field labels (portal-form.md). A prison whose portal words its form
# differently changes these in [portal.labels], not the code.
DEFAULT_LABELS: dict[str, str] = {
    "reference": "Reference",
    "submitter_name": "Your name",
    "submitter_email": "Your email address",
    "submitter_phone": "Your telephone number",
    "relationship": "Your relationship to the prisoner",
    "contact_preference": "Would you like the prison to contact you?",
    "prisoner_name": "Prisoner's full name",
    "prisoner_number": "Prisoner number",
    "prisoner_dob": "Prisoner's date of birth",
    "establishment": "Prison",
    "location": "Wing / location (if known)",
    "urgency": "How urgent is your concern?",
    "topic": "What is your concern about?",
    "concern_text": "What is your concern?",
    "consent_tell_prisoner": (
        "Are you happy for the prison to tell the prisoner that you contacted them?"
    ),
    "consent_understood": (
        "Do you understand the prison may not be able to share information about the "
        "prisoner with you without their consent?"
    ),
    "submitted": "Submitted",
}


@dataclass(frozen=True)
class PrisonSettings:
    name: str
    hotline_phone: str = ""
    duty_phone: str = ""
    portal_url: str = ""
    family_service: str = ""
    governor_address: str = ""


@dataclass(frozen=True)
class MailboxSettings:
    host: str
    username: str
    port: int = 993
    security: str = "ssl"
    password_file: str | None = None
    password_env: str | None = None
    inbox: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    sent_folder: str = "Sent"  # where a copy of every email mailbot sends is kept
    # Hold an IMAP IDLE connection while running as a daemon, so new mail is processed
    # within seconds; the poll every poll_interval_seconds stays as the safety net.
    idle: bool = True
    poll_interval_seconds: int = 60
    batch_size: int = 200
    # Larger messages are moved to quarantine unread: holding them in memory would let
    # one message stop the daemon, and the mailbox itself still keeps them.
    max_message_bytes: int = 50 * 1024 * 1024
    timeout_seconds: int = 30
    connect_attempts: int = 4

    def password(self) -> str:
        return _read_secret("mailbox", self.password_file, self.password_env)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    from_address: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    timeout_seconds: int = 30

    def password(self) -> str | None:
        if not self.username:
            return None
        return _read_secret("smtp", self.password_file, self.password_env)


@dataclass(frozen=True)
class DatabaseSettings:
    url: str


@dataclass(frozen=True)
class PortalSettings:
    senders: tuple[str, ...] = ("safercustody-forms@portal.example.org",)
    subject_pattern: str = r"^\s*Safer Custody Contact Form\b"
    trusted_authserv_id: str = "mx.prison.example"
    dkim_domain: str = "portal.example.org"
    labels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))


@dataclass(frozen=True)
class AlertSettings:
    """Who hears about urgent contacts. Alerts go to staff addresses only."""

    safety_team: tuple[str, ...] = ()
    urgent: tuple[str, ...] = ()
    # The concern's own words stay out of alert emails unless the prison opts in.
    include_text: bool = False
    persistent: tuple[str, ...] = ()  # Head of Safer Custody; default: safety_team
    outage_minutes: float = 30
    # When the mail server is down, outage alerts are left in this mailbox folder.
    mailbox_folder: str = "Mailbot alerts"


@dataclass(frozen=True)
class ReplySettings:
    send_signposting: bool = True
    # Longer enquiries get a signposting draft for staff instead of an automatic reply:
    # the more a family writes, the likelier something the rules do not know is in it.
    signpost_max_words: int = 80
    # At most one automatic reply per recipient in this window: two mail robots must
    # never answer each other in a loop.
    auto_reply_window_hours: int = 24
    template_override_dir: str | None = None
    max_send_attempts: int = 8
    retry_base_seconds: int = 30  # temporary SMTP failures: 30 s, 1 min, 2 min... (max 1 h)

    @property
    def override_dir(self) -> Path | None:
        return Path(self.template_override_dir) if self.template_override_dir else None


@dataclass(frozen=True)
class DeadlineSettings:
    respond_within_hours: int = 72
    warn_when_hours_left: tuple[int, ...] = (24, 6)
    check_interval_minutes: int = 5
    persistent_threshold: int = 3
    persistent_window_days: int = 7


@dataclass(frozen=True)
class OfficeHoursSettings:
    """When the safer custody team is at work; contacts outside count for the report."""

    days: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri")
    start: str = "08:00"
    end: str = "17:00"
    timezone: str = "Europe/London"


@dataclass(frozen=True)
class RetentionSettings:
    months: int = 24  # personal data older than this is anonymised; counts are kept
    raw_message_months: int = 24  # raw message bytes may go sooner


@dataclass(frozen=True)
class DraftSettings:
    # Also place each draft in the mailbox's Drafts folder, so staff can approve (send)
    # it from their mail client; mailbot then finds the sent copy in the Sent folder.
    mailbox_drafts: bool = True
    drafts_folder: str = "Drafts"


@dataclass(frozen=True)
class TriageSettings:
    rules_file: str | None = None  # an admin's extended copy of mailbot/triage/rules.toml


@dataclass(frozen=True)
class Config:
    prison: PrisonSettings
    mailbox: MailboxSettings
    smtp: SmtpSettings
    database: DatabaseSettings
    portal: PortalSettings
    state_dir: Path
    alerts: AlertSettings = field(default_factory=AlertSettings)
    replies: ReplySettings = field(default_factory=ReplySettings)
    triage: TriageSettings = field(default_factory=TriageSettings)
    drafts: DraftSettings = field(default_factory=DraftSettings)
    deadlines: DeadlineSettings = field(default_factory=DeadlineSettings)
    office_hours: OfficeHoursSettings = field(default_factory=OfficeHoursSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    source: Path | None = None

    @property
    def own_addresses(self) -> frozenset[str]:
        """Addresses that are ours: mail from them is never a family contact or answered."""
        addresses = {self.smtp.from_address.lower()}
        if "@" in self.mailbox.username:
            addresses.add(self.mailbox.username.lower())
        return frozenset(addresses)


def _read_secret(section: str, password_file: str | None, password_env: str | None) -> str:
    if password_file:
        path = Path(os.path.expandvars(password_file))
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"[{section}] password_file: cannot read {path}: {exc.strerror}"
            ) from exc
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise ConfigError(
                f"[{section}] password_env: environment variable {password_env} is not set"
            )
        return value
    raise ConfigError(f"[{section}] needs password_file or password_env")


def _section(cls: type, name: str, raw: Any, required: bool = True) -> Any:
    """Build one settings dataclass from its TOML table, naming any bad key."""
    if raw is None:
        if required:
            raise ConfigError(f"missing section [{name}]")
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"[{name}] unknown key {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        expected = known[key].type
        values[key] = _check_type(f"{name}.{key}", expected, value)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = re.findall(r"'(\w+)'", str(exc))
        key = missing[0] if missing else "?"
        raise ConfigError(f"[{name}] missing required key {key!r}") from exc


def _check_type(key: str, expected: str, value: Any) -> Any:
    if expected.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if expected.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{key} must be a positive number, not {value!r}")
        return float(value)
    if expected.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number, not {value!r}")
        if value < 0:
            raise ConfigError(f"{key} must not be negative")
        return value
    if expected.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
        return value
    if expected.startswith("tuple[int"):
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
        ):
            raise ConfigError(f"{key} must be a list of whole numbers")
        return tuple(value)
    if expected.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings")
        return tuple(value)
    if expected.startswith("dict"):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{key} must be a table of strings")
        return value
    return value


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the configuration file (`--config`, else `$MAILBOT_CONFIG`)."""
    if path is None:
        path = os.environ.get("MAILBOT_CONFIG")
    if not path:
        raise ConfigError("no configuration file: pass --config PATH or set MAILBOT_CONFIG")
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return from_dict(raw, source=path)


def from_dict(raw: dict[str, Any], source: Path | None = None) -> Config:
    known_sections = {
        "prison", "mailbox", "smtp", "database", "portal", "state", "alerts", "replies", "triage",
        "drafts", "deadlines", "office_hours", "retention",
    }
    unknown = sorted(set(raw) - known_sections)
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]")

    state = raw.get("state", {})
    state_dir = Path(
        state.get("directory")
        or os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
        or Path.home() / ".local/state/mailbot"
    )

    prison = _section(PrisonSettings, "prison", raw.get("prison"))
    mailbox = _section(MailboxSettings, "mailbox", raw.get("mailbox"))
    smtp = _section(SmtpSettings, "smtp", raw.get("smtp"))
    database_raw = dict(raw.get("database") or {})
    database_raw.setdefault("url", f"sqlite:///{state_dir / 'mailbot.sqlite3'}")
    database = _section(DatabaseSettings, "database", database_raw)

    portal_raw = dict(raw.get("portal") or {})
    labels = dict(DEFAULT_LABELS)
    custom_labels = portal_raw.pop("labels", {})
    if not isinstance(custom_labels, dict):
        raise ConfigError("[portal.labels] must be a table")
    unknown_labels = sorted(set(custom_labels) - set(DEFAULT_LABELS))
    if unknown_labels:
        raise ConfigError(f"[portal.labels] unknown key {unknown_labels[0]!r}")
    labels.update(custom_labels)
    portal = _section(PortalSettings, "portal", portal_raw, required=False)
    portal = PortalSettings(
        senders=tuple(s.lower() for s in portal.senders),
        subject_pattern=portal.subject_pattern,
        trusted_authserv_id=portal.trusted_authserv_id,
        dkim_domain=portal.dkim_domain.lower(),
        labels=labels,
    )

    alerts = _section(AlertSettings, "alerts", raw.get("alerts"), required=False)
    replies = _section(ReplySettings, "replies", raw.get("replies"), required=False)
    triage = _section(TriageSettings, "triage", raw.get("triage"), required=False)
    drafts = _section(DraftSettings, "drafts", raw.get("drafts"), required=False)
    deadlines = _section(DeadlineSettings, "deadlines", raw.get("deadlines"), required=False)
    office_hours = _section(
        OfficeHoursSettings, "office_hours", raw.get("office_hours"), required=False
    )
    retention = _section(RetentionSettings, "retention", raw.get("retention"), required=False)
    _check_office_hours(office_hours)
    for key, addresses in (
        ("safety_team", alerts.safety_team),
        ("urgent", alerts.urgent),
        ("persistent", alerts.persistent),
    ):
        for address in addresses:
            if "@" not in address or any(c in address for c in "\r\n,;<> "):
                raise ConfigError(f"alerts.{key}: {address!r} is not one email address")

    for name, settings in (("mailbox", mailbox), ("smtp", smtp)):
        if settings.security not in SECURITY_MODES:
            raise ConfigError(
                f"{name}.security must be one of {', '.join(SECURITY_MODES)}, "
                f"not {settings.security!r}"
            )
        if not 0 < settings.port < 65536:
            raise ConfigError(f"{name}.port must be between 1 and 65535")
    if mailbox.poll_interval_seconds < 1:
        raise ConfigError("mailbox.poll_interval_seconds must be at least 1")
    if mailbox.batch_size < 1:
        raise ConfigError("mailbox.batch_size must be at least 1")
    if "@" not in smtp.from_address:
        raise ConfigError("smtp.from_address must be an email address")
    try:
        re.compile(portal.subject_pattern)
    except re.error as exc:
        raise ConfigError(
            f"portal.subject_pattern is not a valid regular expression: {exc}"
        ) from exc
    if not database.url.startswith(("sqlite:", "postgresql")):
        raise ConfigError("database.url must be sqlite:///PATH or postgresql+psycopg://...")

    return Config(
        prison=prison,
        mailbox=mailbox,
        smtp=smtp,
        database=database,
        portal=portal,
        state_dir=state_dir,
        alerts=alerts,
        replies=replies,
        triage=triage,
        drafts=drafts,
        deadlines=deadlines,
        office_hours=office_hours,
        retention=retention,
        source=source,
    )


def _check_office_hours(hours: OfficeHoursSettings) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    days = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    for day in hours.days:
        if day not in days:
            raise ConfigError(f"office_hours.days: {day!r} is not one of {sorted(days)}")
    for key in ("start", "end"):
        value = getattr(hours, key)
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ConfigError(f"office_hours.{key} must be HH:MM, not {value!r}")
    try:
        ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"office_hours.timezone: unknown time zone {hours.timezone!r}") from exc
