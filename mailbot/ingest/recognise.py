"""Recognise: this stage decides what kind of message has arrived in the safer custody mailbox.

Every message is one of: a portal form (and whether its sender is proven), a family
member's own email, a reply to one of our emails, an automatic reply, a bounce, bulk mail,
or bytes that are not an email at all. Later stages act on that decision: only a portal
form or a person's own words become a concern, and nothing automatic is ever answered.

The decision is a short chain of named rules, checked in this order:

1. malformed: no header at all, or neither a From nor a body;
2. portal form: From is a configured portal sender or the Subject fits the portal
   pattern. Checked before the automatic-mail rules because the portal's own mail may
   carry machine headers (`Auto-Submitted: auto-generated`);
3. bounce: delivery reports in any format, from DSNs to decades-old MTA prose;
4. automatic reply: out-of-office and other RFC 3834 responses, and read receipts;
5. bounce, weak evidence: a null Return-Path with nothing that says auto-reply;
6. bulk: mailing lists and spam-flagged mail;
7. reply: refers to one of our Message-IDs or carries our `[SC-YYYY-NNNNN]` reference;
8. anything else is a direct email from a person.

When in doubt the answer is a direct email: a person's safety concern filed as
automatic mail would never be read, while automatic mail filed as a person's email costs
a member of staff a glance. That is why the rules that look at wording (a Subject such as
"Returned mail" or "Out of office") only count together with a machine signal: families
write about returned letters and out-of-hours worries in their own words.

Each rule is a small function returning a short reason when it fires, else None; the
reasons travel with the decision so staff can see why a message was filed as it was.
`recognise` never raises, whatever the bytes: header values are read from their raw form
and decoded here rather than through `policy.default`, whose header parser raises on some
malformed input. A rule or a bounce detector (flufl.bounce's) that fails on a message is
logged as one line (`bounce_detector_failed`, `recognise_rule_failed`: which one, and the
error's class, never the message's words) and counts as not having fired: its failure
never makes a message a bounce.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses
from enum import StrEnum
from functools import cached_property

import authres
from flufl.bounce import all_failures

from mailbot.config import Config
from mailbot.logs import event
from mailbot.parsers.mime import clean_text, read_message

log = logging.getLogger(__name__)


class _NoTracebacks(logging.Filter):
    """flufl.bounce logs each detector's exception with its traceback (which may quote
    the message) before re-raising it; `Facts.flufl_failures` says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


logging.getLogger("flufl.bounce").addFilter(_NoTracebacks())


class MessageKind(StrEnum):
    """What a message is, as far as the safer custody mailbox is concerned."""

    PORTAL_FORM = "portal_form"  # looks like a portal form; see Recognition.verified
    DIRECT_EMAIL = "direct_email"  # a person writing directly
    REPLY = "reply"  # a reply to one of our emails
    AUTO_REPLY = "auto_reply"  # out-of-office, read receipts and other automatic answers
    BOUNCE = "bounce"  # delivery failure, delay and other delivery reports
    BULK = "bulk"  # mailing lists, newsletters, spam-flagged mail
    MALFORMED = "malformed"  # cannot be read as an email at all


@dataclass(frozen=True)
class Recognition:
    """The decision on one message, with what was read to make it."""

    kind: MessageKind
    verified: bool  # only ever True for a portal form with a trusted dkim=pass
    reasons: tuple[str, ...]
    message_id: str | None
    sender: str | None  # the From addr-spec, lower-cased
    referenced_ids: tuple[str, ...]  # In-Reply-To then References, brackets stripped
    our_reference: str | None  # "SC-YYYY-NNNNN" from the Subject
    bounced_recipients: tuple[str, ...]  # bounces only
    original_message_id: str | None  # bounces only: the Message-ID of what bounced


# Limits that keep one hostile message from costing much: real mail stays far below them.
_MAX_HEADERS = 2000
_MAX_HEADER_CHARS = 10_000
_MAX_PARTS = 500
_MAX_SCANNED_TEXT = 256 * 1024
# flufl.bounce reads every line of the message; real bounce notices are small, and a
# large message that is a bounce is still recognised by its structure, just without the
# recipients that only the prose would give.
_MAX_FLUFL_BYTES = 5 * 1024 * 1024
_REASON_VALUE_CHARS = 80

_OUR_REFERENCE = re.compile(r"\[\s*(SC-\d{4}-\d{5})\s*\]", re.IGNORECASE)
_BRACKETED_ID = re.compile(r"<([^<>\s]+)>")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_CONTENT_TYPE = re.compile(r"^\s*([!#$%&'*+.^_`|~\w-]+)\s*/\s*([!#$%&'*+.^_`|~\w-]+)")

# Local parts that mail systems send reports from; compared with "-", "_" and "." removed.
_SYSTEM_LOCAL_PARTS = frozenset(
    {
        "mailerdaemon",
        "maildaemon",
        "mdaemon",
        "postmaster",
        "maildeliverysystem",
        "maildeliverysubsystem",
    }
)
_EXCHANGE_SYSTEM_SENDER = re.compile(r"^microsoftexchange[0-9a-f]{32}$")

# How mail systems title their delivery reports, anchored at the start of the Subject.
_BOUNCE_SUBJECT = re.compile(
    r"""^\s*(?:
        undeliver(?:able|ed)\b
      | non-?\s?deliver(?:y|able)\b
      | (?:permanent\s+)?delivery\s+(?:status|notification|report|failure|failed
                                     |problem|has\s+failed|delayed|warning)\b
      | failure\s+(?:notice|delivery)\b
      | (?:e-?)?mail\s+(?:delivery\s+)?(?:failed|failure|problem|warning|error)\b
      | mail\s+system\s+error\b
      | (?:your\s+)?(?:e-?mail|mail|message)\b.{0,80}?
            \b(?:could\s+not|couldn't|cannot|can't|was\s+not|not)\s+(?:be\s+)?deliver
      | returned\s+(?:e-?mail|mail|message)\b
      | failed\s+(?:e-?mail|mail|delivery)\b
      | (?:delayed\s+mail|message\s+delayed)\b
      | warning:\s+(?:could\s+not\s+send|message\b.{0,60}?
                     \b(?:delayed|not\s+yet\s+been\s+delivered))
      | unzustellbar\b | nicht\s+zustellbar\b | non\s+remis\b | onbestelbaar\b
      | non\s+recapitabile\b | no\s+se\s+puede\s+entregar\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# The same vocabulary anywhere in the Subject; some gateways append it to the original
# Subject ("RE: ... : non remis (delivery failed)").
_BOUNCE_WORDS = re.compile(
    r"\b(?:undeliver(?:able|ed)|non-?\s?deliver(?:y|able)|delivery\s+(?:has\s+)?failed"
    r"|delivery\s+failure|could\s+not\s+be\s+delivered|returned\s+mail|failure\s+notice"
    r"|non\s+remis|unzustellbar)\b",
    re.IGNORECASE,
)
# A person forwarding a bounce they received is writing to us, not bouncing.
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|wg|tr|rv|doorst)\s*:", re.IGNORECASE)

# Prefixes mail clients put on automatic replies; the colon makes them machine-made.
_AUTO_REPLY_SUBJECT = re.compile(
    r"""^\s*(?:
        automatic\s+reply | auto(?:matic)?[\s-]?(?:reply|response|answer) | autoreply | auto
      | out\s+of\s+(?:the\s+)?office(?:\s+auto-?reply)?
      | abwesenheitsnotiz | automatische\s+antwort
      | r[ée]ponse\s+automatique | respuesta\s+autom[áa]tica | resposta\s+autom[áa]tica
      | risposta\s+automatica | automatisch\s+antwoord | autosvar | automaattinen\s+vastaus
      | odpowied[źz]\s+automatyczna
    )\s*:""",
    re.IGNORECASE | re.VERBOSE,
)
# Out-of-office wording anywhere: a person may write it too, so it needs a machine signal.
_AUTO_REPLY_WORDS = re.compile(
    r"\b(?:out\s+of\s+(?:the\s+)?office(?!\s+hours)|auto(?:matic)?[\s-]?repl(?:y|ied)|autoreply"
    r"|abwesenheit\w*|r[ée]ponse\s+automatique)\b",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder")
_FALSE_VALUES = frozenset({"", "no", "false", "0", "off"})


def _clean(text: str) -> str:
    """Printable text for reasons and identifiers: 8-bit header bytes that the parser kept
    as surrogates are decoded as UTF-8 where they are UTF-8, and control characters
    (a NUL cannot be stored in PostgreSQL) are dropped."""
    return _CONTROL_CHARS.sub(" ", clean_text(text)).strip()


def _short(text: str) -> str:
    text = _clean(text)
    if len(text) > _REASON_VALUE_CHARS:
        return text[: _REASON_VALUE_CHARS - 1] + "…"
    return text


def _raw_headers(part: Message) -> list[tuple[str, str]]:
    """Header (lower-cased name, unfolded value) pairs as they arrived, never parsed by the
    policy, so no header value can make this raise."""
    headers: list[tuple[str, str]] = []
    try:
        for name, value in part.raw_items():
            if len(headers) >= _MAX_HEADERS:
                break
            text = str(value)[:_MAX_HEADER_CHARS]
            text = _FOLDING.sub("", text).replace("\r", " ").replace("\n", " ")
            headers.append((str(name).strip().lower(), text.strip()))
    except Exception:  # a broken part simply has no readable headers
        pass
    return headers


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _content_type(part: Message) -> str:
    raw = _first(_raw_headers(part), "content-type")
    match = _CONTENT_TYPE.match(raw or "")
    if match:
        return f"{match.group(1)}/{match.group(2)}".lower()
    return "text/plain"


def _param(raw_content_type: str | None, name: str) -> str:
    match = re.search(
        rf";\s*{re.escape(name)}\s*=\s*\"?([^\";\s]*)", raw_content_type or "", re.IGNORECASE
    )
    return match.group(1).lower() if match else ""


def _decode_words(raw: str) -> str:
    """Decode RFC 2047 encoded words; any charset problem leaves the raw text."""
    try:
        chunks = []
        for chunk, charset in decode_header(raw):
            if isinstance(chunk, bytes):
                try:
                    chunk = chunk.decode(charset or "ascii", "replace")
                except LookupError:
                    chunk = chunk.decode("utf-8", "replace")
            chunks.append(chunk)
        return "".join(chunks)
    except Exception:  # decode_header raises on some malformed words
        return raw


def _token(value: str | None) -> str:
    """The leading keyword of a header like `Auto-Submitted: auto-replied (vacation)`."""
    if value is None:
        return ""
    return re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower()


def _strip_id(value: str) -> str | None:
    match = _BRACKETED_ID.search(value)
    text = match.group(1) if match else value.strip().strip("<>").strip()
    text = _clean(text)
    return text or None


def _ids_in(value: str) -> list[str]:
    ids = [_clean(found) for found in _BRACKETED_ID.findall(value)]
    if not ids:
        # Some old mailers leave out the angle brackets.
        ids = [_clean(word) for word in value.split() if "@" in word]
    return [found for found in ids if found]


def _walk(msg: Message) -> Iterator[tuple[Message, str]]:
    """The message's own parts with their content types, depth first, without recursion
    and with a bound on the count.

    Parts inside an attached message are left out: a person forwarding a bounce as an
    attachment is writing to us, and what the attachment contains is not our business
    here. The attached message itself is included."""
    stack: list[Message] = [msg]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        ctype = _content_type(part)
        yield part, ctype
        if not ctype.startswith("multipart/"):
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))


def _text_of(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(data, bytes):
        return ""
    return data[:_MAX_SCANNED_TEXT].decode("utf-8", "replace")


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


class Facts:
    """What the rules look at, read once from one message without ever raising."""

    def __init__(self, msg: Message, config: Config, raw: bytes | None = None) -> None:
        self.msg = msg
        self.config = config
        self._raw = raw
        self.headers = _raw_headers(msg)
        self.subject = _clean(_decode_words(self.header("subject") or ""))
        self.content_type = _content_type(msg)
        self.report_type = _param(self.header("content-type"), "report-type")
        self.parts: list[tuple[Message, str]] = list(_walk(msg))
        from_headers = self.all("from")
        self.from_header_count = len(from_headers)
        self.from_addresses = _addresses(from_headers[0]) if from_headers else []
        self.sender = self.from_addresses[0] if self.from_addresses else None
        self.null_from = bool(from_headers) and re.search(r"<\s*>", from_headers[0]) is not None
        self.our_domain = config.smtp.from_address.rpartition("@")[2].strip().lower()

    def header(self, name: str) -> str | None:
        return _first(self.headers, name)

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def has(self, name: str) -> bool:
        return self.header(name) is not None

    @cached_property
    def message_id(self) -> str | None:
        value = self.header("message-id")
        return _strip_id(value) if value else None

    @cached_property
    def referenced_ids(self) -> tuple[str, ...]:
        found: list[str] = []
        for name in ("in-reply-to", "references"):
            for value in self.all(name):
                found.extend(_ids_in(value))
        return _unique(found)

    @cached_property
    def our_reference(self) -> str | None:
        match = _OUR_REFERENCE.search(self.subject)
        return match.group(1).upper() if match else None

    def is_ours(self, message_id: str) -> bool:
        local, _, domain = message_id.rpartition("@")
        return domain.lower() == self.our_domain and local.lower().startswith("mailbot.")

    @cached_property
    def has_body(self) -> bool:
        try:
            payload = self.msg.get_payload()
        except Exception:
            return False
        if isinstance(payload, list):
            return bool(payload)
        return bool(str(payload).strip())

    @cached_property
    def flufl_failures(self) -> tuple[str, ...]:
        """Failed and delayed recipients that flufl.bounce's detectors find, lower-cased.

        Its detectors expect `compat32` messages, as Mailman gives them."""
        raw = self._raw
        if raw is None:
            try:
                raw = self.msg.as_bytes(policy=policy.compat32)
            except Exception:  # a message that cannot be re-serialised
                return ()
        if len(raw) > _MAX_FLUFL_BYTES:
            return ()
        try:
            legacy = BytesParser(policy=policy.compat32).parsebytes(raw)
            temporary, permanent = all_failures(legacy)
        except Exception as exc:  # its heuristics are not written for hostile input
            event(log, logging.WARNING, "bounce_detector_failed", detector=_detector(exc),
                  error=exc.__class__.__name__, treated_as="no failed recipients")
            return ()
        found = []
        for address in sorted(temporary | permanent):
            try:
                found.append(address.decode("ascii").strip().lower())
            except (UnicodeDecodeError, AttributeError):
                continue
        return _unique(found)

    @cached_property
    def dsn_recipients(self) -> tuple[str, ...]:
        """Original- and Final-Recipient of each failed or delayed delivery in DSN parts."""
        found: list[str] = []
        for block in self._status_blocks():
            action = _token(_first(block, "action"))
            if action and not action.startswith(("fail", "delay", "error")):
                continue
            for name in ("original-recipient", "final-recipient"):
                recipient = _first(block, name) or ""
                address = recipient.rpartition(";")[2].strip().strip("<>").strip()
                if "@" in address:
                    found.append(_clean(address).lower())
        return _unique(found)

    def _status_blocks(self) -> Iterator[list[tuple[str, str]]]:
        """Header blocks of message/delivery-status and disposition-notification parts."""
        for part, ctype in self.parts:
            if ctype not in (
                "message/delivery-status",
                "message/global-delivery-status",
                "message/disposition-notification",
            ):
                continue
            try:
                payload = part.get_payload()
            except Exception:
                continue
            if isinstance(payload, list):
                for block in payload:
                    if isinstance(block, Message):
                        yield _raw_headers(block)
            elif isinstance(payload, str):
                for chunk in re.split(r"\r?\n\s*\r?\n", payload):
                    yield _raw_headers(HeaderParser(policy=policy.compat32).parsestr(chunk))

    @cached_property
    def attached_original(self) -> bool:
        return any(
            ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
            for _, ctype in self.parts[1:]
        )

    @cached_property
    def original_message_id(self) -> str | None:
        """The Message-ID of the message that bounced, preferring one of ours."""
        candidates: list[str] = []
        for part, ctype in self.parts[1:]:
            if ctype in ("message/rfc822", "message/rfc822-headers", "message/global"):
                try:
                    payload = part.get_payload()
                except Exception:
                    continue
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    value = _first(_raw_headers(payload[0]), "message-id")
                    if value:
                        candidates.append(value)
            elif ctype == "text/rfc822-headers":
                inner = HeaderParser(policy=policy.compat32).parsestr(_text_of(part))
                value = _first(_raw_headers(inner), "message-id")
                if value:
                    candidates.append(value)
        for block in self._status_blocks():
            for name in ("original-message-id", "x-original-message-id"):
                value = _first(block, name)
                if value:
                    candidates.append(value)
        # Many MTAs quote the returned message inline rather than attaching it.
        for part, ctype in self.parts:
            if ctype == "text/plain":
                candidates.extend(
                    re.findall(
                        r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)",
                        _text_of(part),
                        re.IGNORECASE | re.MULTILINE,
                    )
                )
        # Exchange refers to the original from the report itself.
        candidates.extend(self.referenced_ids)
        ids = [found for found in (_strip_id(c) for c in candidates) if found]
        for found in ids:
            if self.is_ours(found):
                return found
        return ids[0] if ids else None


def _detector(exc: BaseException) -> str:
    """Which of flufl.bounce's detectors raised (its module's name), else "flufl.bounce"."""
    name = "flufl.bounce"
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if "/flufl/bounce/_detectors/" in path:
            name = path.rsplit("/", 1)[-1].removesuffix(".py")
        tb = tb.tb_next
    return name


def _addresses(value: str) -> list[str]:
    try:
        pairs = getaddresses([value])
    except Exception:
        return []
    return [_clean(addr).lower() for _, addr in pairs if "@" in addr]


Rule = Callable[[Facts], str | None]


# --- 1. Malformed ---------------------------------------------------------------------


def no_headers(facts: Facts) -> str | None:
    """Bytes with no header at all are not an email (empty, or garbage)."""
    return None if facts.headers else "no headers"


def no_sender_and_no_body(facts: Facts) -> str | None:
    if facts.has("from") or facts.has_body:
        return None
    return "no From and no body"


# --- 2. Portal form -------------------------------------------------------------------


def from_portal_sender(facts: Facts) -> str | None:
    if facts.sender and facts.sender in facts.config.portal.senders:
        return "From matches portal sender"
    return None


def portal_subject(facts: Facts) -> str | None:
    try:
        if re.search(facts.config.portal.subject_pattern, facts.subject, re.IGNORECASE):
            return "Subject matches portal pattern"
    except re.error:  # the config loader validates it; a hand-built Config may not
        return None
    return None


def trusted_dkim_pass(facts: Facts) -> str | None:
    """A dkim=pass for the portal domain stamped by our own receiving server.

    Authentication-Results headers with any other authserv-id are ignored: anyone can
    write one. This relies on the receiving server removing incoming headers that claim
    its own authserv-id, as RFC 8601 section 5 requires of it."""
    portal = facts.config.portal
    trusted = portal.trusted_authserv_id.strip().lower()
    domain = portal.dkim_domain.strip().lower()
    for value in facts.all("authentication-results"):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # an unreadable header proves nothing
            continue
        if (header.authserv_id or "").lower() != trusted:
            continue
        for result in header.results:
            if getattr(result, "method", "") != "dkim" or getattr(result, "result", "") != "pass":
                continue
            for prop in getattr(result, "properties", []):
                if (
                    prop.type == "header"
                    and prop.name == "d"
                    and str(prop.value or "").strip().lower() == domain
                ):
                    return f"trusted dkim=pass for {domain} ({trusted})"
    return None


def _portal_verification(facts: Facts) -> tuple[bool, str]:
    dkim = trusted_dkim_pass(facts)
    domain = facts.config.portal.dkim_domain
    if dkim is None:
        return False, f"no trusted dkim=pass for {domain}"
    # The signature proves the portal sent it; only its own sending address with no other
    # author alongside proves the form is the portal's and not someone else's mail relayed
    # through the portal domain.
    if facts.from_header_count != 1 or len(facts.from_addresses) != 1:
        return False, f"{dkim}, but From is not a single address"
    if from_portal_sender(facts) is None:
        return False, f"{dkim}, but From is not a portal sender"
    return True, dkim


# --- 3. Bounce ------------------------------------------------------------------------


def delivery_report(facts: Facts) -> str | None:
    """multipart/report (RFC 6522) of any type except read receipts, which are answers."""
    if facts.content_type != "multipart/report":
        return None
    if facts.report_type == "disposition-notification":
        return None
    if facts.report_type:
        return f"multipart/report; report-type={_short(facts.report_type)}"
    return "multipart/report"


def delivery_status_part(facts: Facts) -> str | None:
    for _, ctype in facts.parts:
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            return f"{ctype} part"
    return None


def from_mail_system(facts: Facts) -> str | None:
    if facts.null_from and not facts.sender:
        return "From is the null address <>"
    if facts.sender:
        local = facts.sender.rpartition("@")[0].strip('"')
        if re.sub(r"[-_.]", "", local) in _SYSTEM_LOCAL_PARTS or _EXCHANGE_SYSTEM_SENDER.match(
            local
        ):
            return f"From {_short(facts.sender)} is a mail system address"
    return None


def auto_submitted_failure(facts: Facts) -> str | None:
    """Sendmail marks its delivery reports `Auto-Submitted: auto-generated (failure)`."""
    value = facts.header("auto-submitted") or ""
    if re.search(r"\(\s*(?:failure|delayed?|warning)\s*\)", value, re.IGNORECASE):
        return f"Auto-Submitted: {_short(value)}"
    return None


def bounce_subject_with_evidence(facts: Facts) -> str | None:
    """A delivery-failure Subject, believed only with a machine signal alongside."""
    if not _BOUNCE_SUBJECT.search(facts.subject):
        return None
    evidence = _bounce_evidence(facts)
    if evidence is None:
        return None
    return f"Subject {_short(facts.subject)!r} with {evidence}"


def bounce_words_with_failures(facts: Facts) -> str | None:
    """Delivery-failure words anywhere in the Subject, plus failed recipients in the body."""
    if _BOUNCE_SUBJECT.search(facts.subject) or _FORWARD_PREFIX.match(facts.subject):
        return None  # the anchored rule has judged it, or a person forwards a bounce
    if not _BOUNCE_WORDS.search(facts.subject):
        return None
    if not facts.flufl_failures:
        return None
    return f"Subject {_short(facts.subject)!r} with failed recipients in the body"


def _bounce_evidence(facts: Facts) -> str | None:
    if _auto_submitted(facts):
        return "Auto-Submitted"
    if null_return_path(facts):
        return "a null Return-Path"
    if facts.attached_original:
        return "the returned message attached"
    if facts.flufl_failures:
        return "failed recipients in the body"
    return None


# --- 4. Automatic reply ---------------------------------------------------------------


def _auto_submitted(facts: Facts) -> str | None:
    value = facts.header("auto-submitted")
    if value is None or _token(value) in _FALSE_VALUES:
        return None
    return value


def auto_submitted(facts: Facts) -> str | None:
    """RFC 3834: any Auto-Submitted value except "no" marks automatic mail."""
    value = _auto_submitted(facts)
    return f"Auto-Submitted: {_short(value)}" if value else None


def autoreply_header(facts: Facts) -> str | None:
    for name in _AUTO_REPLY_HEADERS:
        value = facts.header(name)
        if value is not None and _token(value) not in _FALSE_VALUES:
            return f"{name} present"
    return None


def precedence_auto_reply(facts: Facts) -> str | None:
    if _token(facts.header("precedence")) == "auto_reply":
        return "Precedence: auto_reply"
    return None


def auto_reply_subject(facts: Facts) -> str | None:
    if _AUTO_REPLY_SUBJECT.search(facts.subject):
        return f"Subject {_short(facts.subject)!r} is an automatic reply"
    return None


def suppressed_out_of_office(facts: Facts) -> str | None:
    """Out-of-office wording with a machine signal.

    `X-Auto-Response-Suppress` alone proves nothing: Outlook also sets it on ordinary
    mail a person sends. Nor does the wording alone: "out of office hours" is a phrase a
    worried family may use. Together they are Exchange's out-of-office."""
    if not _AUTO_REPLY_WORDS.search(facts.subject):
        return None
    if facts.has("x-auto-response-suppress"):
        return f"X-Auto-Response-Suppress with Subject {_short(facts.subject)!r}"
    if null_return_path(facts):
        return f"null Return-Path with Subject {_short(facts.subject)!r}"
    return None


def read_receipt(facts: Facts) -> str | None:
    """A message disposition notification (RFC 8098): the recipient's client answering."""
    if facts.content_type != "multipart/report":
        return None
    if facts.report_type != "disposition-notification":
        return None
    return "multipart/report; report-type=disposition-notification (read receipt)"


# --- 5. Bounce on weak evidence -------------------------------------------------------


def null_return_path(facts: Facts) -> str | None:
    """Only mail systems send with an empty envelope sender (RFC 5321 section 4.5.5);
    auto-replies often do too, so this counts after the auto-reply rules."""
    value = facts.header("return-path")
    if value is not None and re.fullmatch(r"<\s*>", value.strip()):
        return "Return-Path: <>"
    return None


# --- 6. Bulk --------------------------------------------------------------------------


def list_mail(facts: Facts) -> str | None:
    for name, label in (("list-id", "List-Id"), ("list-unsubscribe", "List-Unsubscribe")):
        if facts.has(name):
            return f"{label} present"
    return None


def precedence_bulk(facts: Facts) -> str | None:
    value = _token(facts.header("precedence"))
    if value in ("bulk", "list", "junk"):
        return f"Precedence: {value}"
    return None


def spam_flagged(facts: Facts) -> str | None:
    """A filter's spam verdict. Spam filters misjudge people too, so a message that
    replies to one of our own emails is not filed as spam: a spammer cannot know those."""
    if replies_to_our_message(facts) or subject_has_our_reference(facts):
        return None
    if _token(facts.header("x-spam-flag")) == "yes":
        return "X-Spam-Flag: YES"
    if _token(facts.header("x-spam-status")).rstrip(",") == "yes":
        return "X-Spam-Status: Yes"
    return None


# --- 7. Reply -------------------------------------------------------------------------


def replies_to_our_message(facts: Facts) -> str | None:
    for found in facts.referenced_ids:
        if facts.is_ours(found):
            return f"refers to our message <{_short(found)}>"
    return None


def subject_has_our_reference(facts: Facts) -> str | None:
    if facts.our_reference:
        return f"Subject carries our reference [{facts.our_reference}]"
    return None


# --- 8. Direct email ------------------------------------------------------------------


def from_our_own_address(facts: Facts) -> str | None:
    """Our own mail coming back is filed as usual; the store decides what to do with it."""
    if facts.sender and facts.sender in facts.config.own_addresses:
        return "from our own address"
    return None


MALFORMED_RULES: tuple[Rule, ...] = (no_headers, no_sender_and_no_body)
PORTAL_RULES: tuple[Rule, ...] = (from_portal_sender, portal_subject)
BOUNCE_RULES: tuple[Rule, ...] = (
    delivery_report,
    delivery_status_part,
    from_mail_system,
    auto_submitted_failure,
    bounce_subject_with_evidence,
    bounce_words_with_failures,
)
AUTO_REPLY_RULES: tuple[Rule, ...] = (
    read_receipt,
    auto_submitted,
    autoreply_header,
    precedence_auto_reply,
    auto_reply_subject,
    suppressed_out_of_office,
)
WEAK_BOUNCE_RULES: tuple[Rule, ...] = (null_return_path,)
BULK_RULES: tuple[Rule, ...] = (list_mail, precedence_bulk, spam_flagged)
REPLY_RULES: tuple[Rule, ...] = (replies_to_our_message, subject_has_our_reference)


def _fired(facts: Facts, rules: tuple[Rule, ...]) -> list[str]:
    reasons = []
    for rule in rules:
        try:
            reason = rule(facts)
        except Exception as exc:  # one broken rule must not lose the message
            event(log, logging.WARNING, "recognise_rule_failed", rule=rule.__name__,
                  error=exc.__class__.__name__, treated_as="not fired")
            reason = None
        if reason:
            reasons.append(reason)
    return reasons


def _decide(facts: Facts) -> tuple[MessageKind, bool, list[str]]:
    if reasons := _fired(facts, MALFORMED_RULES):
        return MessageKind.MALFORMED, False, reasons
    portal = _fired(facts, PORTAL_RULES)
    if portal and facts.content_type != "multipart/report":
        verified, why = _portal_verification(facts)
        return MessageKind.PORTAL_FORM, verified, [*portal, why]
    if reasons := _fired(facts, BOUNCE_RULES):
        return MessageKind.BOUNCE, False, reasons
    if reasons := _fired(facts, AUTO_REPLY_RULES):
        return MessageKind.AUTO_REPLY, False, reasons
    if reasons := _fired(facts, WEAK_BOUNCE_RULES):
        return MessageKind.BOUNCE, False, reasons
    if reasons := _fired(facts, BULK_RULES):
        return MessageKind.BULK, False, reasons
    if reasons := _fired(facts, REPLY_RULES):
        return MessageKind.REPLY, False, reasons
    return MessageKind.DIRECT_EMAIL, False, ["no automatic, list or portal markers"]


def _recognise(facts: Facts) -> Recognition:
    kind, verified, reasons = _decide(facts)
    if kind is not MessageKind.MALFORMED and (own := from_our_own_address(facts)):
        reasons.append(own)
    recipients: tuple[str, ...] = ()
    original: str | None = None
    if kind is MessageKind.BOUNCE:
        try:
            recipients = _unique([*facts.dsn_recipients, *facts.flufl_failures])
            original = facts.original_message_id
        except Exception:  # the decision stands without the details
            reasons.append("could not read the bounce details")
    return Recognition(
        kind=kind,
        verified=verified,
        reasons=tuple(reasons),
        message_id=facts.message_id,
        sender=facts.sender,
        referenced_ids=facts.referenced_ids,
        our_reference=facts.our_reference,
        bounced_recipients=recipients,
        original_message_id=original,
    )


def _bare(kind: MessageKind, reason: str) -> Recognition:
    return Recognition(
        kind=kind,
        verified=False,
        reasons=(reason,),
        message_id=None,
        sender=None,
        referenced_ids=(),
        our_reference=None,
        bounced_recipients=(),
        original_message_id=None,
    )


def recognise(msg: EmailMessage, config: Config) -> Recognition:
    """Decide what kind of message `msg` is. Never raises."""
    return _recognise_with(msg, config, None)


def recognise_bytes(raw: bytes, config: Config) -> Recognition:
    """Decide what kind of message the raw bytes are. Never raises."""
    if not raw or not raw.strip():
        return _bare(MessageKind.MALFORMED, "empty message")
    try:
        msg = read_message(raw)
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        # A message we could not examine is treated as a person's: it must reach staff.
        return _bare(MessageKind.DIRECT_EMAIL, f"could not be parsed: {type(exc).__name__}")
    return _recognise_with(msg, config, raw)


def _recognise_with(msg: Message, config: Config, raw: bytes | None) -> Recognition:
    try:
        return _recognise(Facts(msg, config, raw))
    except Exception as exc:  # the last guard; the rules guard themselves
        return _bare(MessageKind.DIRECT_EMAIL, f"could not be examined: {type(exc).__name__}")
