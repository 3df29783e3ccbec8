"""Configuration: one TOML file, validated at start so a bad key fails loudly and by name.

The file's shape is declared here as pydantic models, one per `[section]`: a key the
section does not have, a value of the wrong type or out of range, or a missing required
key stops mailbot with one line naming the section and key
(`[mailbox] port: Input should be a valid integer, not '993'`). Values are taken as TOML
gives them: `port = "993"` is refused, not quietly turned into a number.

Each section is a pydantic dataclass, so it is still a frozen dataclass to the rest of
mailbot (`dataclasses.replace` gives the public copy of `[prison]` with the staff-only
phone blanked); `Config`, the whole file, is a pydantic model.

Secrets never live in the file itself: a password is read from `password_file` (for
example a systemd credential) or from the environment variable named by `password_env`.
A server signed in to with OAuth2 (`auth = "oauth2"`, the keys in `[mailbox.oauth2]` or
`[smtp.oauth2]`) names its client secret, key or service account file the same way.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticCustomError

from mailbot.errors import ConfigError

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


# --- The values a key may take ------------------------------------------------------------


def _as_tuple(value: Any) -> Any:
    """A TOML array becomes a tuple, so settings stay immutable; anything else is refused."""
    if isinstance(value, list | tuple):
        return tuple(value)
    raise PydanticCustomError("list_type", "Input should be a list")


def _one_address(value: str) -> str:
    if "@" not in value or any(c in value for c in "\r\n,;<> "):
        raise PydanticCustomError("email_address", "Input should be one email address")
    return value


def _has_at_sign(value: str) -> str:
    if "@" not in value:
        raise PydanticCustomError("email_address", "Input should be an email address")
    return value


def _regular_expression(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "Input should be a valid regular expression ({error})", {"error": str(exc)}
        ) from None
    return value


def _clock_time(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise PydanticCustomError("clock_time", "Input should be a time as HH:MM")
    return value


def _time_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "time_zone", "Input should be a time zone such as 'Europe/London'"
        ) from None
    return value


def _database_url(value: str) -> str:
    if not value.startswith(("sqlite:", "postgresql")):
        raise PydanticCustomError(
            "database_url", "Input should be sqlite:///PATH or postgresql+psycopg://..."
        )
    return value


def _with_default_labels(labels: dict[str, str]) -> dict[str, str]:
    """The file names only the labels that differ; every other keeps its default."""
    for key in labels:
        if key not in DEFAULT_LABELS:
            raise PydanticCustomError("unknown_key", "unknown key '{key}'", {"key": key})
    return {**DEFAULT_LABELS, **labels}


Count = Annotated[int, Strict(), Field(ge=0)]  # a whole number, 0 or more
AtLeastOne = Annotated[int, Strict(), Field(ge=1)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Minutes = Annotated[float, Strict(), Field(ge=0)]  # a whole number will do
Security = Literal["ssl", "starttls", "none"]
SignInMethod = Literal["password", "oauth2"]
Provider = Literal["microsoft", "google", "generic"]
SECURITY_MODES: tuple[str, ...] = get_args(Security)
Texts = Annotated[tuple[StrictStr, ...], BeforeValidator(_as_tuple)]
Address = Annotated[StrictStr, AfterValidator(_one_address)]
Addresses = Annotated[tuple[Address, ...], BeforeValidator(_as_tuple)]
Lowercase = Annotated[StrictStr, AfterValidator(str.lower)]
Pattern = Annotated[StrictStr, AfterValidator(_regular_expression)]
Clock = Annotated[StrictStr, AfterValidator(_clock_time)]
Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
Labels = Annotated[dict[StrictStr, StrictStr], AfterValidator(_with_default_labels)]

_SECTION = ConfigDict(extra="forbid")


# What each OAuth2 provider needs, takes besides `provider` and `scope`, and may not have.
_PROVIDER_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # provider: (required, optional)
    "microsoft": (("tenant_id", "client_id"),
                  ("client_secret_file", "client_secret_env", "certificate_file",
                   "private_key_file", "authority_host")),
    "google": (("service_account_file",), ()),
    "generic": (("token_url", "client_id"), ("client_secret_file", "client_secret_env")),
}
_OAUTH2_KEYS = ("client_id", "client_secret_file", "client_secret_env", "tenant_id",
                "certificate_file", "private_key_file", "authority_host",
                "service_account_file", "token_url")


def _keys_problem(message: str, **context: Any) -> PydanticCustomError:
    """A problem between keys of one table (not one key's value): said as is."""
    return PydanticCustomError("section_keys", message, context)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, config=_SECTION)
class OAuth2Settings:
    """How mailbot gets an access token for a server (`[mailbox.oauth2]`, `[smtp.oauth2]`).

    `microsoft`: an Entra ID app signing in as itself (client credentials), with a client
    secret or a certificate and its key; `google`: a service account with domain-wide
    delegation, acting as the mailbox; `generic`: any RFC 6749 token endpoint with client
    credentials. The signing in itself is mailbot/mailbox/signin.py.
    """

    provider: Provider
    client_id: StrictStr | None = None
    client_secret_file: StrictStr | None = None
    client_secret_env: StrictStr | None = None
    scope: StrictStr | None = None  # default: the provider's mail scope
    tenant_id: StrictStr | None = None  # microsoft
    certificate_file: StrictStr | None = None  # microsoft, with private_key_file
    private_key_file: StrictStr | None = None
    authority_host: StrictStr | None = None  # microsoft; default login.microsoftonline.com
    service_account_file: StrictStr | None = None  # google
    token_url: StrictStr | None = None  # generic

    @model_validator(mode="after")
    def _keys_of_the_provider(self) -> OAuth2Settings:
        required, optional = _PROVIDER_KEYS[self.provider]
        for key in required:
            if not getattr(self, key):
                raise _keys_problem("provider '{provider}' needs {key}",
                                    provider=self.provider, key=key)
        for key in _OAUTH2_KEYS:
            if getattr(self, key) is not None and key not in required + optional:
                raise _keys_problem("provider '{provider}' does not take {key}",
                                    provider=self.provider, key=key)
        secrets = [key for key in ("client_secret_file", "client_secret_env")
                   if getattr(self, key)]
        certificate = bool(self.certificate_file or self.private_key_file)
        if certificate and not (self.certificate_file and self.private_key_file):
            raise _keys_problem("certificate_file and private_key_file go together")
        if self.provider == "microsoft" and len(secrets) + certificate != 1:
            raise _keys_problem(
                "provider 'microsoft' needs one of client_secret_file, client_secret_env "
                "or certificate_file with private_key_file"
            )
        if self.provider == "generic":
            if len(secrets) != 1:
                raise _keys_problem("provider 'generic' needs one of client_secret_file "
                                    "or client_secret_env")
            _secure_url("token_url", self.token_url or "")
        if self.authority_host is not None:
            _secure_url("authority_host", self.authority_host)
        return self

    def client_secret(self, section: str) -> str:
        return _read_secret(section, self.client_secret_file, self.client_secret_env,
                            key="client_secret")


def _secure_url(key: str, url: str) -> None:
    """`https://`, except to this machine itself (a test server, a local relay)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise _keys_problem(
        "{key} must be an https:// URL (http:// only to a loopback address), not '{url}'",
        key=key, url=url,
    )


def _sign_in_keys(section: str, auth: str, oauth2: OAuth2Settings | None,
                  password_keys: tuple[str | None, ...]) -> None:
    if auth == "oauth2" and any(password_keys):
        raise _keys_problem("auth = 'oauth2' takes no password_file or password_env; "
                            "the client secret goes in [{section}.oauth2]", section=section)
    if auth == "password" and oauth2 is not None:
        raise _keys_problem("a [{section}.oauth2] table is given but auth is 'password': "
                            "set auth = 'oauth2' to use it", section=section)


# --- The sections ---------------------------------------------------------------------------


@dataclass(frozen=True, config=_SECTION)
class PrisonSettings:
    name: StrictStr
    hotline_phone: StrictStr = ""
    duty_phone: StrictStr = ""
    portal_url: StrictStr = ""
    family_service: StrictStr = ""
    governor_address: StrictStr = ""


@dataclass(frozen=True, config=_SECTION)
class MailboxSettings:
    host: StrictStr
    username: StrictStr
    port: Port = 993
    security: Security = "ssl"
    password_file: StrictStr | None = None
    password_env: StrictStr | None = None
    # "oauth2": sign in with an access token from [mailbox.oauth2] (SASL XOAUTH2).
    auth: SignInMethod = "password"
    oauth2: OAuth2Settings | None = None
    inbox: StrictStr = "INBOX"
    processed_folder: StrictStr = "Processed"
    quarantine_folder: StrictStr = "Quarantine"
    # Where a copy of every email mailbot sends is kept, and staff responses are read.
    # Unset: the folder the server flags \Sent (SPECIAL-USE, RFC 6154), such as
    # Exchange's "Sent Items" or Gmail's "[Gmail]/Sent Mail"; "Sent" if it flags none.
    sent_folder: StrictStr | None = None
    # Hold an IMAP IDLE connection while running as a daemon, so new mail is processed
    # within seconds; the poll every poll_interval_seconds stays as the safety net.
    idle: StrictBool = True
    poll_interval_seconds: AtLeastOne = 60
    batch_size: AtLeastOne = 200
    # Larger messages are moved to quarantine unread: holding them in memory would let
    # one message stop the daemon, and the mailbox itself still keeps them.
    max_message_bytes: Count = 50 * 1024 * 1024
    timeout_seconds: Count = 30
    connect_attempts: Count = 4

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> MailboxSettings:
        if self.auth == "oauth2" and self.oauth2 is None:
            raise _keys_problem("auth = 'oauth2' needs a [mailbox.oauth2] table")
        _sign_in_keys("mailbox", self.auth, self.oauth2,
                      (self.password_file, self.password_env))
        return self

    def password(self) -> str:
        return _read_secret("mailbox", self.password_file, self.password_env)


@dataclass(frozen=True, config=_SECTION)
class SmtpSettings:
    host: StrictStr
    from_address: Annotated[StrictStr, AfterValidator(_has_at_sign)]
    port: Port = 587
    security: Security = "starttls"
    username: StrictStr | None = None  # with auth = "oauth2", default: from_address
    password_file: StrictStr | None = None
    password_env: StrictStr | None = None
    timeout_seconds: Count = 30
    # "oauth2": sign in with an access token (SASL XOAUTH2) from [smtp.oauth2], or from
    # [mailbox.oauth2] when this section has none (one app usually does both).
    auth: SignInMethod = "password"
    oauth2: OAuth2Settings | None = None

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> SmtpSettings:
        _sign_in_keys("smtp", self.auth, self.oauth2, (self.password_file, self.password_env))
        return self

    @property
    def login(self) -> str:
        """Who mailbot signs in to the mail server as ("" for no sign-in)."""
        if self.auth == "oauth2":
            return self.username or self.from_address
        return self.username or ""

    def password(self) -> str | None:
        if not self.username:
            return None
        return _read_secret("smtp", self.password_file, self.password_env)


def _default_state_dir() -> Path:
    return Path(
        os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
        or Path.home() / ".local/state/mailbot"
    )


def _directory(value: Any) -> Any:
    if not isinstance(value, str | Path):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return Path(value) if value else _default_state_dir()


@dataclass(frozen=True, config=_SECTION)
class StateSettings:
    directory: Annotated[Path, BeforeValidator(_directory)] = field(
        default_factory=_default_state_dir
    )


@dataclass(frozen=True, config=_SECTION)
class DatabaseSettings:
    url: Annotated[StrictStr, AfterValidator(_database_url)]
    # How long a write waits for SQLite's lock before it fails (PostgreSQL locks rows).
    lock_timeout_seconds: Count = 10


@dataclass(frozen=True, config=_SECTION)
class PortalSettings:
    senders: Annotated[tuple[Lowercase, ...], BeforeValidator(_as_tuple)] = (
        "safercustody-forms@portal.example.org",
    )
    subject_pattern: Pattern = r"^\s*Safer Custody Contact Form\b"
    trusted_authserv_id: StrictStr = "mx.prison.example"
    dkim_domain: Lowercase = "portal.example.org"
    labels: Labels = field(default_factory=lambda: dict(DEFAULT_LABELS))


@dataclass(frozen=True, config=_SECTION)
class AlertSettings:
    """Who hears about urgent contacts. Alerts go to staff addresses only."""

    safety_team: Addresses = ()
    urgent: Addresses = ()
    # The concern's own words stay out of alert emails unless the prison opts in.
    include_text: StrictBool = False
    persistent: Addresses = ()  # Head of Safer Custody; default: safety_team
    outage_minutes: Minutes = 30
    # When the mail server is down, outage alerts are left in this mailbox folder.
    mailbox_folder: StrictStr = "Mailbot alerts"


@dataclass(frozen=True, config=_SECTION)
class ReplySettings:
    send_signposting: StrictBool = True
    # Longer enquiries get a signposting draft for staff instead of an automatic reply:
    # the more a family writes, the likelier something the rules do not know is in it.
    signpost_max_words: Count = 80
    # At most one automatic reply per recipient in this window: two mail robots must
    # never answer each other in a loop.
    auto_reply_window_hours: Count = 24
    template_override_dir: StrictStr | None = None
    max_send_attempts: Count = 8
    retry_base_seconds: Count = 30  # temporary SMTP failures: 30 s, 1 min, 2 min... (max 1 h)

    @property
    def override_dir(self) -> Path | None:
        return Path(self.template_override_dir) if self.template_override_dir else None


@dataclass(frozen=True, config=_SECTION)
class DeadlineSettings:
    respond_within_hours: Count = 72
    warn_when_hours_left: Annotated[tuple[Count, ...], BeforeValidator(_as_tuple)] = (24, 6)
    check_interval_minutes: Count = 5
    persistent_threshold: Count = 3
    persistent_window_days: Count = 7


@dataclass(frozen=True, config=_SECTION)
class OfficeHoursSettings:
    """When the safer custody team is at work; contacts outside count for the report."""

    days: Annotated[tuple[Weekday, ...], BeforeValidator(_as_tuple)] = (
        "Mon", "Tue", "Wed", "Thu", "Fri",
    )
    start: Clock = "08:00"
    end: Clock = "17:00"
    timezone: Annotated[StrictStr, AfterValidator(_time_zone)] = "Europe/London"


@dataclass(frozen=True, config=_SECTION)
class RetentionSettings:
    months: Count = 24  # personal data older than this is anonymised; counts are kept
    raw_message_months: Count = 24  # raw message bytes may go sooner


@dataclass(frozen=True, config=_SECTION)
class DraftSettings:
    # Also place each draft in the mailbox's Drafts folder, so staff can approve (send)
    # it from their mail client; mailbot then finds the sent copy in the Sent folder.
    mailbox_drafts: StrictBool = True
    # Unset: the folder the server flags \Drafts (Gmail's "[Gmail]/Drafts"); "Drafts"
    # if it flags none.
    drafts_folder: StrictStr | None = None


@dataclass(frozen=True, config=_SECTION)
class TriageSettings:
    rules_file: StrictStr | None = None  # an admin's extended copy of mailbot/triage/rules.toml


def _listen(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PydanticCustomError("listen", "Input should be HOST:PORT, e.g. 127.0.0.1:8080")
    return value


Role = Literal["officer", "manager", "admin"]


@dataclass(frozen=True, config=_SECTION)
class OidcSettings:
    """Signing staff in to the console with Entra ID, or another OpenID Connect provider
    (`[web.oidc]`; mailbot/web/oidc.py, docs/entra-id.md): the authorization code flow
    with PKCE, the ID token checked against the provider's keys.

    `microsoft`: the tenant's issuer, https://login.microsoftonline.com/TENANT/v2.0;
    `generic`: `issuer`, whose /.well-known/openid-configuration is read. `groups` maps
    group object IDs (the ID token's `groups` claim) to mailbot's roles, the highest of a
    person's groups winning; someone in none of them is refused.
    """

    provider: Literal["microsoft", "generic"]
    client_id: StrictStr
    # The console's address as staff reach it (https://mailbot.prison.example): the
    # redirect URI registered with the provider is this and /sign-in/entra/callback.
    redirect_base: StrictStr
    groups: dict[StrictStr, Role]
    client_secret_file: StrictStr | None = None
    client_secret_env: StrictStr | None = None
    tenant_id: StrictStr | None = None  # microsoft
    authority_host: StrictStr | None = None  # microsoft; default login.microsoftonline.com
    issuer: StrictStr | None = None  # generic
    # false: only this provider signs anyone in; the name and password fields go.
    local_accounts: StrictBool = True
    scope: StrictStr = "openid profile email"
    # Certificate authorities to trust for the provider's TLS besides the system's
    # (a TLS-inspecting proxy; the tests' own provider).
    ca_file: StrictStr | None = None
    timeout_seconds: Annotated[int, Strict(), Field(ge=1, le=120)] = 15

    @model_validator(mode="after")
    def _keys_of_the_provider(self) -> OidcSettings:
        if self.provider == "microsoft":
            if not self.tenant_id:
                raise _keys_problem("provider 'microsoft' needs tenant_id")
            if self.issuer is not None:
                raise _keys_problem("provider 'microsoft' takes tenant_id, not issuer")
        else:
            if not self.issuer:
                raise _keys_problem("provider 'generic' needs issuer")
            if self.tenant_id is not None or self.authority_host is not None:
                raise _keys_problem("provider 'generic' takes issuer, not tenant_id or "
                                    "authority_host")
            _secure_url("issuer", self.issuer)
        if self.authority_host is not None:
            _secure_url("authority_host", self.authority_host)
        _secure_url("redirect_base", self.redirect_base)
        if bool(self.client_secret_file) == bool(self.client_secret_env):
            raise _keys_problem("needs one of client_secret_file or "
                                "client_secret_env")
        if not self.groups:
            raise _keys_problem("groups maps at least one group's object ID to "
                                "a role (officer, manager or admin)")
        if "openid" not in self.scope.split():
            raise _keys_problem("scope must include openid")
        return self

    @property
    def issuer_url(self) -> str:
        if self.provider == "microsoft":
            host = (self.authority_host or "https://login.microsoftonline.com").rstrip("/")
            return f"{host}/{self.tenant_id}/v2.0"
        return (self.issuer or "").rstrip("/")

    @property
    def redirect_uri(self) -> str:
        return self.redirect_base.rstrip("/") + "/sign-in/entra/callback"

    def client_secret(self) -> str:
        return _read_secret("web.oidc", self.client_secret_file, self.client_secret_env,
                            key="client_secret")


@dataclass(frozen=True, config=_SECTION)
class WebSettings:
    """The staff web console (`mailbot web`), behind the prison's reverse proxy."""

    listen: Annotated[StrictStr, AfterValidator(_listen)] = "127.0.0.1:8080"
    # A file holding a long random secret that signs the session cookies (a systemd
    # credential, like the passwords); read when the console starts.
    session_secret_file: StrictStr | None = None
    # A session unused this long is over: the officer signs in again.
    idle_minutes: Minutes = 30
    # TLS is done by the reverse proxy: cookies are marked Secure and HSTS is sent.
    # false only for a console reached over plain HTTP on loopback (tests, a trial).
    behind_tls: StrictBool = True
    # The reverse proxy's addresses, trusted for X-Forwarded-For and X-Forwarded-Proto.
    trusted_proxies: Annotated[tuple[StrictStr, ...], BeforeValidator(_as_tuple)] = (
        "127.0.0.1",
    )
    # Wrong passwords in a row that lock an account, and for how long.
    lockout_after: Count = 10
    lockout_minutes: Minutes = 15
    # Wrong sign-ins from one client address (any names) within lockout_minutes that
    # refuse that address's sign-ins until the oldest is that old (mailbot/web/throttle.py).
    address_attempts: Count = 30
    page_size: Annotated[int, Strict(), Field(ge=5, le=500)] = 50
    # Entra ID (OpenID Connect) sign-in beside, or instead of, the local accounts.
    oidc: OidcSettings | None = None

    @property
    def local_accounts(self) -> bool:
        return self.oidc is None or self.oidc.local_accounts

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def session_secret(self) -> str:
        if not self.session_secret_file:
            raise ConfigError("[web] needs session_secret_file: a file with a long random "
                              "secret, e.g. head -c 32 /dev/urandom | base64 > FILE")
        secret = _read_secret("web", self.session_secret_file, None, key="session_secret")
        if len(secret) < 32:
            raise ConfigError(f"[web] session_secret_file: {self.session_secret_file} holds "
                              f"{len(secret)} characters; use at least 32 random ones")
        return secret


class Config(BaseModel):
    """The whole file: one field per section, in the order problems are reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prison: PrisonSettings
    mailbox: MailboxSettings
    smtp: SmtpSettings
    state: StateSettings = Field(default_factory=StateSettings)
    # Default: a SQLite file in the state directory (filled in below, so after `state`).
    database: DatabaseSettings = Field(default_factory=dict, validate_default=True)
    portal: PortalSettings = Field(default_factory=PortalSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    drafts: DraftSettings = Field(default_factory=DraftSettings)
    deadlines: DeadlineSettings = Field(default_factory=DeadlineSettings)
    office_hours: OfficeHoursSettings = Field(default_factory=OfficeHoursSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _smtp_has_a_token_source(self) -> Config:
        if self.smtp.auth == "oauth2" and self.smtp.oauth2 is None and self.mailbox.oauth2 is None:
            raise _keys_problem("[smtp] auth = 'oauth2' needs [smtp.oauth2], or "
                                "[mailbox.oauth2] to share")
        return self

    @property
    def smtp_oauth2(self) -> OAuth2Settings | None:
        """The token source for the mail server: its own, else the mailbox's."""
        if self.smtp.auth != "oauth2":
            return None
        return self.smtp.oauth2 or self.mailbox.oauth2

    @field_validator("database", mode="before")
    @classmethod
    def _database_in_state_directory(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict) and "url" not in value:
            state = info.data.get("state")  # absent when [state] itself is wrong
            directory = state.directory if state is not None else _default_state_dir()
            return {**value, "url": f"sqlite:///{directory / 'mailbot.sqlite3'}"}
        return value

    @property
    def state_dir(self) -> Path:
        return self.state.directory

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from (None when built from a dict)."""
        return self._source

    @property
    def own_addresses(self) -> frozenset[str]:
        """Addresses that are ours: mail from them is never a family contact or answered."""
        addresses = {self.smtp.from_address.lower()}
        if "@" in self.mailbox.username:
            addresses.add(self.mailbox.username.lower())
        return frozenset(addresses)


def _read_secret(section: str, password_file: str | None, password_env: str | None,
                 key: str = "password") -> str:
    """The secret from `KEY_file` (a path; `${CREDENTIALS_DIRECTORY}` is expanded) or the
    environment variable `KEY_env` names; a `ConfigError` naming the key otherwise."""
    if password_file:
        path = Path(os.path.expandvars(password_file))
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"[{section}] {key}_file: cannot read {path}: {exc.strerror}"
            ) from exc
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise ConfigError(
                f"[{section}] {key}_env: environment variable {password_env} is not set"
            )
        return value
    raise ConfigError(f"[{section}] needs {key}_file or {key}_env")


# --- Reading the file -----------------------------------------------------------------------


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
    """Validate the file's contents; a `ConfigError` names every bad key, on one line."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(map(describe_validation_error, exc.errors()))) from None
    config._source = source
    return config


def describe_validation_error(error: ErrorDetails) -> str:
    """One problem as the file's reader sees it: `[section] key: what is wrong, not VALUE`.

    pydantic's location is a path of keys and list positions; every key but the last
    names a table (`("portal", "labels", "nmae")` is key `nmae` of `[portal.labels]`).
    """
    loc = error["loc"]
    names = [part for part in loc if isinstance(part, str)]
    table, key = ".".join(names[:-1]), names[-1] if names else ""
    positions = "".join(f"[{part}]" for part in loc[len(names):] if isinstance(part, int))
    kind = error["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"[{table}] unknown key {key!r}" if table else f"unknown section [{key}]"
    if kind == "unknown_key":  # a key of a table held as a dict ([portal.labels])
        return f"[{'.'.join(names)}] {error['msg']}"
    if kind == "section_keys":  # keys of one table that do not go together
        return f"[{'.'.join(names)}] {error['msg']}" if names else error["msg"]
    if kind == "missing":
        return f"[{table}] missing required key {key!r}" if table else f"missing section [{key}]"
    if kind in ("model_type", "dataclass_type", "dict_type"):
        return f"[{'.'.join(names)}] must be a table, not {_shown(error['input'])}"
    where = f"[{table}] {key}{positions}" if table else f"[{key}]{positions}"
    message = f"{where}: {error['msg']}"
    value = error.get("input")
    if not isinstance(value, dict | list | tuple):
        message += f", not {_shown(value)}"
    return message


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
