"""Reading raw message bytes into `email` objects, and their text bodies into `str`,
without ever raising on bad input.

Whatever a sender's software did to the charset or transfer encoding, the text is
decoded on a best-effort basis and what had to be guessed is said in `problems`, so
that staff know to read the original when the text matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from functools import lru_cache
from html.parser import HTMLParser


class _CachingHeaderRegistry(HeaderRegistry):
    """`policy.default`'s header parsing, memoised for the structural MIME headers.

    The email package re-parses Content-Type on every `get_content_type()` call (dozens
    a message); these values repeat across messages and their parsed form is immutable,
    so caching them is safe and roughly halves the cost of reading a message."""

    _CACHED = frozenset(
        {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
    )

    def __init__(self) -> None:
        super().__init__()
        self._parse_cached = lru_cache(maxsize=2048)(super().__call__)
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        # The stdlib builds a new class on every lookup, half the cost of parsing a
        # short header; the class for a name never changes.
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found

    def __call__(self, name: str, value: str):  # type: ignore[no-untyped-def]
        if name.lower() in self._CACHED:
            return self._parse_cached(name, value)
        return super().__call__(name, value)


POLICY = policy.default.clone(header_factory=_CachingHeaderRegistry())
# For the messages mailbot writes: SMTP and IMAP both want CRLF, and smtplib sends
# bytes exactly as given.
WIRE_POLICY = POLICY.clone(linesep="\r\n")
_PARSER = BytesParser(policy=POLICY)

# Bounds on the MIME tree we walk: a crafted message must not make one walk expensive.
_MAX_PARTS = 500
_MAX_DEPTH = 20

# Tried in order when the declared charset is unknown or does not fit the bytes.
# cp1252 before latin-1 because mail software labels cp1252 text as latin-1 (and
# unlabelled) far more often than the reverse; latin-1 decodes any byte string.
_FALLBACK_CHARSETS = (
    ("utf-8", "UTF-8"),
    ("cp1252", "Windows-1252"),
    ("latin-1", "ISO-8859-1"),
)


def read_message(raw: bytes) -> EmailMessage:
    """Parse raw bytes with `policy.default`. The parser itself tolerates any bytes;
    defects are recorded on the message (`msg.defects`) rather than raised."""
    return _PARSER.parsebytes(raw)  # type: ignore[return-value]


@dataclass
class BodyText:
    """The text bodies of a message, decoded, with line endings normalised to `\\n`."""

    plain: str | None = None  # first text/plain part that is not an attachment
    html: str | None = None  # first text/html part that is not an attachment
    problems: list[str] = field(default_factory=list)


def body_text(msg: Message) -> BodyText:
    """Find and decode the first text/plain and text/html parts of `msg`. Never raises.

    Attachments (`Content-Disposition: attachment`) and attached messages
    (`message/rfc822`) are not the body and are skipped; non-text parts are never
    decoded, whatever their size.
    """
    result = BodyText()
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS and (result.plain is None or result.html is None):
        part, depth = stack.pop()
        seen += 1
        try:
            maintype = part.get_content_maintype()
            if maintype == "multipart":
                if depth >= _MAX_DEPTH:
                    result.problems.append("MIME parts nested too deeply; inner parts skipped")
                    continue
                children = part.get_payload()
                if isinstance(children, list):
                    stack.extend((child, depth + 1) for child in reversed(children))
                else:
                    result.problems.append(f"{part.get_content_type()} without parts skipped")
                continue
            content_type = part.get_content_type()
            if content_type not in ("text/plain", "text/html"):
                continue
            if part.get_content_disposition() == "attachment":
                continue
            if content_type == "text/plain" and result.plain is None:
                result.plain = _decode_text_part(part, content_type, result.problems)
            elif content_type == "text/html" and result.html is None:
                result.html = _decode_text_part(part, content_type, result.problems)
        except Exception as exc:  # noqa: BLE001 - a malformed part must not stop the walk
            result.problems.append(f"unreadable MIME part skipped ({type(exc).__name__})")
    if stack and seen >= _MAX_PARTS:
        result.problems.append(f"more than {_MAX_PARTS} MIME parts; the rest were skipped")
    return result


def _decode_text_part(part: Message, content_type: str, problems: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = b""
    cte = part.get("Content-Transfer-Encoding", "")
    if any(isinstance(d, _TRANSFER_DEFECTS) for d in part.defects):
        problems.append(
            f"damaged {str(cte).strip().lower() or 'transfer'} encoding in {content_type}; "
            "undecodable bytes skipped"
        )
    text = _decode_bytes(payload, part.get_content_charset(), content_type, problems)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


_TRANSFER_DEFECTS = (
    email_errors.InvalidBase64CharactersDefect,
    email_errors.InvalidBase64PaddingDefect,
    email_errors.InvalidBase64LengthDefect,
)


def _decode_bytes(
    payload: bytes, charset: str | None, content_type: str, problems: list[str]
) -> str:
    if charset is None:
        if payload.isascii():
            return payload.decode("ascii")
        complaint = f"no charset declared in {content_type}"
    elif _is_text_codec(charset):
        text = _try_decode(payload, charset)
        if text is not None:
            return text
        complaint = f"{content_type} is not valid {charset!r}"
    else:
        complaint = f"unknown charset {charset!r} in {content_type}"
    for candidate, label in _FALLBACK_CHARSETS:
        text = _try_decode(payload, candidate)
        if text is not None:
            problems.append(f"{complaint}; decoded as {label}")
            return text
    # Unreachable while latin-1 is a fallback; kept so that a change there cannot raise.
    problems.append(f"{complaint}; decoded as UTF-8 with replacement characters")
    return payload.decode("utf-8", "replace")


def _is_text_codec(charset: str) -> bool:
    try:
        "".encode(charset)  # codecs that are not text codecs (zlib, rot13) raise LookupError
    except (LookupError, UnicodeError, TypeError, ValueError):
        return False
    return True


def _try_decode(payload: bytes, charset: str) -> str | None:
    try:
        return payload.decode(charset)
    except (UnicodeError, LookupError, ValueError, TypeError):
        return None


# --- HTML to text ---------------------------------------------------------------

# Elements that start and end on a line of their own in the text rendering.
BLOCK_TAGS = frozenset(
    "address article aside blockquote caption dd div dl dt figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p section table tbody tfoot thead tr "
    "ul".split()
)
_SKIPPED_TAGS = frozenset({"script", "style", "title", "template"})
# HTML's own whitespace, which a browser collapses (a no-break space is not in it).
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


class TextExtractor(HTMLParser):
    """Text content the way a reader sees it: runs of spaces collapse, except in <pre>.

    `chunks` joined is the text; `html_to_text` tidies it. Subclassed by the portal form
    reader, which reads its table itself and the rest of the page through this.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._at_space = True  # the last character out was a space or a line break

    def _emit(self, text: str) -> None:
        if text:
            self.chunks.append(text)
            self._at_space = text[-1] in " \n"

    def _block_boundary(self) -> None:
        if self.chunks and not self.chunks[-1].endswith("\n"):
            self._emit("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "br":
            self._emit("\n")
        elif tag == "pre":
            self._pre_depth += 1
            self._block_boundary()
        elif tag in BLOCK_TAGS:
            self._block_boundary()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIPPED_TAGS:  # a self-closed <script/> opens nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
            self._block_boundary()
        elif tag in BLOCK_TAGS:
            self._block_boundary()
        elif tag in ("td", "th") and not self._at_space:
            self._emit(" ")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self._emit(data.replace("\r\n", "\n").replace("\r", "\n"))
            return
        text = _HTML_SPACE.sub(" ", data)
        if self._at_space:
            text = text.lstrip(" ")
        # A no-break space is not collapsed, so an "empty" <p>&nbsp;</p> is a blank line.
        self._emit(text.replace("\xa0", " "))


def html_to_text(html: str) -> str:
    """Render HTML as plain text: `<br>` and block ends become line breaks, other
    whitespace collapses as a browser would, entities are unescaped, scripts and styles
    are dropped. Never raises."""
    extractor = TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was read
        pass
    return tidy_lines("".join(extractor.chunks))


def trim_blank_lines(lines: list[str]) -> str:
    """The lines joined with `\\n`, without the blank (whitespace-only) lines before and
    after them; the lines themselves are kept exactly."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def tidy_lines(text: str) -> str:
    """Drop trailing spaces, runs of blank lines and trailing blank lines."""
    out: list[str] = []
    for line in text.split("\n"):
        line = line.rstrip(" ")
        # At most one blank line in a row: nested block ends would stack them up.
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


# --- Headers ----------------------------------------------------------------------


def header_text(msg: Message, name: str) -> str:
    """The decoded value of header `name` ("" when absent), unfolded. Never raises.

    Raw 8-bit bytes in a header (not allowed, but sent) are read as UTF-8, the only
    guess that is usually right, with replacement characters where it is not.
    """
    try:
        value = msg.get(name)
        text = "" if value is None else str(value)
    except Exception:  # noqa: BLE001 - header classes raise on some malformed values
        text = next((str(v) for k, v in msg.raw_items() if k.lower() == name.lower()), "")
    return clean_text(text.replace("\r", " ").replace("\n", " "))


def header_addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header such as From. Never raises."""
    try:
        header = msg.get(name)
        if header is None:
            return []
        pairs = [(a.display_name, a.addr_spec) for a in header.addresses]
    except Exception:  # noqa: BLE001 - fall back to the lenient compat32 parser
        pairs = getaddresses([header_text(msg, name)])
    return [(clean_text(n), clean_text(a)) for n, a in pairs if n or a]


def clean_text(text: str) -> str:
    """`text` with the parser's surrogate escapes (undecodable raw bytes) read as UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")
