"""The parse stage for portal forms: decides what each field of a safer custody contact
form says, and what in it staff should check.

The format is the reference format of portal-form.md, with the field labels taken from
`config.portal.labels`. The text/plain rendering is read when present, else the HTML
table. Nothing here decides whether the form is genuine (recognise does) or what the
concern means (triage does).

The one hard part is the free text ("What is your concern?"): it is the only value a
family can spread over several lines, so it is the only place a forged field could
hide. It ends only at a `--- Section ---` line, and a line inside it that looks like a
field ("Prisoner number: Z9999ZZ") stays text and never sets a field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import Message
from functools import lru_cache
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from mailbot.config import Config
from mailbot.parsers.contact import Flag, FormParseError, ParsedContact, Source
from mailbot.parsers.mime import (
    TextExtractor,
    body_text,
    header_text,
    tidy_lines,
    trim_blank_lines,
)

LONDON = ZoneInfo("Europe/London")

CONCERN_TEXT = "concern_text"
# portal-form.md: the fields a family may leave blank. The portal requires the others
# and stamps reference and submitted itself, so a blank one means something went wrong.
OPTIONAL_FIELDS = frozenset(
    {"submitter_phone", "prisoner_number", "prisoner_dob", "location", "relationship"}
)

_APOSTROPHES = str.maketrans(dict.fromkeys("\u2018\u2019\u02bc\u00b4\u2032`", "'"))
_NOMIS = re.compile(r"[A-Z][0-9]{4}[A-Z]{2}")
_NUMBER_SEPARATORS = re.compile(r"[\s.\-]+")
_DATE = re.compile(r"([0-9]{1,2})[/.\-]([0-9]{1,2})[/.\-]([0-9]{4})")
_DATE_TIME = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})\s+([0-9]{1,2}):([0-9]{2})")
_WORD = re.compile(r"[^\W_]+")
_MAX_NOTES = 20
# Words around a prison's name that do not change which prison it is:
# "HMP Exampletown", "HMP & YOI Exampletown", "H.M.P. Exampletown", "Exampletown Prison".
_PRISON_PREFIXES = frozenset({"hmp", "hmyoi", "hmpyoi", "hm", "h", "m", "p", "prison", "yoi"})
_PRISON_SUFFIXES = frozenset({"prison", "hmp", "yoi", "hmpyoi"})


def parse_portal_form(msg: Message, config: Config) -> ParsedContact:
    """Read a portal form into a `ParsedContact`, best effort.

    Raises `FormParseError` only when neither text part has a single recognisable
    field. Anything else that is wrong or missing is said in `problems` and flagged:
    NEEDS_REVIEW for a missing required field, INVALID_EMAIL, WRONG_ESTABLISHMENT,
    DECODING_PROBLEM.
    """
    labels = _labels_for(config)
    body = body_text(msg)
    reading: _Reading | None = None
    if body.plain is not None:
        reading = _read_plain(body.plain, labels)
    if (reading is None or not reading.fields) and body.html is not None:
        had_plain = reading is not None
        reading = _read_html(body.html, labels)
        if had_plain and reading.fields:
            reading.notes.insert(0, "the text/plain part has no form fields; read the HTML part")
    if reading is None or not reading.fields:
        parts = [
            p
            for p, text in (("text/plain", body.plain), ("text/html", body.html))
            if text is not None
        ]
        where = " or ".join(parts) + " part" if parts else "message (it has no text part)"
        raise FormParseError(
            f"not readable as a portal form: no field label from [portal.labels] in the {where}"
        )

    contact = ParsedContact(source=Source.PORTAL_FORM, subject=header_text(msg, "Subject"))
    if body.problems:
        contact.flag(Flag.DECODING_PROBLEM)
        contact.problems.extend(body.problems)
    contact.problems.extend(reading.notes)
    _fill(contact, reading, labels, config)
    return contact


def normalise_prisoner_number(typed: str) -> str:
    """`"a 1234 bc"` -> `"A1234BC"`; `""` when what was typed is not one letter, four
    digits and two letters once spaces, hyphens and dots are removed."""
    compact = _NUMBER_SEPARATORS.sub("", typed)
    if not compact.isascii():  # "ß".upper() is "SS": only ASCII can be a NOMIS number
        return ""
    compact = compact.upper()
    return compact if _NOMIS.fullmatch(compact) else ""


def check_email_address(typed: str) -> tuple[str, bool]:
    """(address, valid): normalised by email-validator when valid, else as typed.

    A value holding whitespace (CR/LF included), a comma or a semicolon is never valid:
    it is several addresses or an attempt to add headers, and nothing may be sent to it.
    """
    value = typed.strip()
    if not value or any(c.isspace() or c in ",;" for c in value):
        return value, False
    try:
        return validate_email(value, check_deliverability=False).normalized, True
    except (EmailNotValidError, ValueError, UnicodeError):
        return value, False


def normalise_label(text: str) -> str:
    """A label as compared: case, runs of whitespace, a trailing colon and the kind of
    apostrophe do not matter."""
    return " ".join(text.translate(_APOSTROPHES).split()).casefold().rstrip(": ")


# --- Labels -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Labels:
    keys: dict[str, str]  # label, normalised and as configured -> field key
    written: dict[str, str]  # field key -> label as configured, for problem lines
    # A line's text before a colon longer than this cannot be a label: bounds the work
    # spent on long lines full of colons.
    longest: int


def _labels_for(config: Config) -> _Labels:
    return _build_labels(tuple(config.portal.labels.items()))


@lru_cache(maxsize=16)
def _build_labels(items: tuple[tuple[str, str], ...]) -> _Labels:
    keys = {normalise_label(text): key for key, text in items}
    # Labels as configured, for a lookup without normalising: what nearly every line has.
    keys.update((text, key) for key, text in items)
    longest = 2 * max((len(text) for _, text in items), default=0) + 16
    return _Labels(keys=keys, written=dict(items), longest=longest)


def _match_label(line: str, labels: _Labels) -> tuple[str, str, str] | None:
    """(key, label as written, rest of the line) when `line` starts with a known label
    followed by a colon, or is a known label alone."""
    limit = min(len(line), labels.longest)
    colon = line.find(":", 0, limit)
    while colon != -1:
        key = labels.keys.get(line[:colon]) or labels.keys.get(normalise_label(line[:colon]))
        if key is not None:
            return key, line[:colon].strip(), line[colon + 1 :]
        colon = line.find(":", colon + 1, limit)
    if len(line) <= labels.longest:
        key = labels.keys.get(normalise_label(line))
        if key is not None:
            return key, line.strip(), ""
    return None


# --- Reading the text/plain rendering ----------------------------------------------


@dataclass
class _Reading:
    """What one rendering of the form says, before any field is interpreted."""

    fields: list[tuple[str, str, str]] = field(default_factory=list)  # key, label, value
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Note a problem once; a body of a thousand odd lines must not flood the log."""
        if text in self.notes:
            return
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)
        elif len(self.notes) == _MAX_NOTES:
            self.notes.append("more unrecognised lines not listed")


def _section_name(line: str) -> str | None:
    """The name in a section line (`--- About you ---` -> "About you"), else None."""
    stripped = line.rstrip()
    if len(stripped) < 7 or not stripped.startswith("---") or not stripped.endswith("---"):
        return None
    inner = stripped[3:-3]
    if inner[:1] not in (" ", "\t") or inner[-1:] not in (" ", "\t"):
        return None
    return inner.strip() or None


def _read_plain(text: str, labels: _Labels) -> _Reading:
    reading = _Reading()
    lines = text.split("\n")
    at = _read_lines(lines, 0, labels, reading, stop_at_free_text=True)
    if at is None:
        return reading
    _, written, same_line = _match_label(lines[at], labels) or ("", "", "")
    seen = {key for key, _, _ in reading.fields} | {CONCERN_TEXT}
    end = _free_text_end(lines, at + 1, seen, labels, reading)
    free = lines[at + 1 : end]
    same_line = same_line.lstrip(" \t")
    if same_line.strip():
        free.insert(0, same_line)
    reading.fields.append((CONCERN_TEXT, written, trim_blank_lines(free)))
    _read_lines(lines, end, labels, reading, stop_at_free_text=False)
    return reading


def _read_lines(
    lines: list[str], start: int, labels: _Labels, reading: _Reading, stop_at_free_text: bool
) -> int | None:
    """Read `Label: value` lines from `start`; return the index of the free-text label
    line when reached (and asked to stop there), else None."""
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip() or _section_name(line) is not None:
            continue
        match = _match_label(line, labels)
        if match is None:
            _note_unknown(line, reading)
            continue
        key, written, value = match
        if key == CONCERN_TEXT and stop_at_free_text:
            return i
        reading.fields.append((key, written, value.strip()))
    return None


def _free_text_end(
    lines: list[str], start: int, seen: set[str], labels: _Labels, reading: _Reading
) -> int:
    """Index of the section line that ends the free text starting at `start`.

    The free text ends at a section line; when the text itself holds a line that is
    exactly a section line, the real end is the section line from which the rest of the
    body is nothing but form: section lines each followed by fields, every field a known
    label not seen before. A forged section in the text fails that test, because the
    real sections and fields still follow it. Scanning back from the end finds the
    earliest such line in one pass. When no line passes (say the portal added a field
    we do not know), the first section line ends the text, as portal-form.md says.
    """
    keys = set(seen)
    sections: set[str] = set()
    fields_below = 0
    end: int | None = None
    for i in range(len(lines) - 1, start - 1, -1):
        line = lines[i]
        if not line.strip():
            continue
        name = _section_name(line)
        if name is not None:
            if fields_below == 0 or name.casefold() in sections:
                break
            sections.add(name.casefold())
            fields_below = 0
            end = i
            continue
        match = _match_label(line, labels)
        if match is None or match[0] in keys:
            break
        keys.add(match[0])
        fields_below += 1
    first = next(
        (i for i in range(start, len(lines)) if _section_name(lines[i]) is not None), len(lines)
    )
    if end is None:
        return first
    if end != first:
        reading.note(
            f"the concern text holds a line that looks like a section heading "
            f"({lines[first].strip()!r}); it was kept as part of the text"
        )
    return end


def _note_unknown(line: str, reading: _Reading) -> None:
    label, colon, rest = line.partition(":")
    label = label.strip()
    if colon and label and len(label) <= 120 and (not rest or rest[0] in " \t"):
        reading.note(f"unrecognised field {label!r} ignored")


# --- Reading the text/html rendering ------------------------------------------------

_CELL_BLOCKS = frozenset({"p", "div", "li"})


class _FormHtmlReader(TextExtractor):
    """The form table's rows as lists of cell text; the page around the table as text.

    Cell text is kept as written (the portal escapes values but does not reflow them):
    `<br>` is a line break, and the source line break the portal puts after each `<br>`
    is not a second one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._tables = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._after_br = False

    def _close_cell(self) -> None:
        if self._cell is not None:
            if self._row is None:
                self._row = []
            self._row.append("".join(self._cell))
            self._cell = None

    def _close_row(self) -> None:
        self._close_cell()
        if self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def _cell_line_break(self) -> None:
        if self._cell and not self._cell[-1].endswith("\n"):
            self._cell.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._tables += 1
            if self._tables == 1:
                super().handle_starttag(tag, attrs)
        elif not self._tables:
            super().handle_starttag(tag, attrs)
        elif tag == "tr" and self._tables == 1:
            self._close_row()
            self._row = []
        elif tag in ("td", "th") and self._tables == 1:
            self._close_cell()
            self._cell = []
        elif self._cell is not None:
            if tag == "br":
                self._cell.append("\n")
                self._after_br = True
            elif tag in _CELL_BLOCKS:
                self._cell_line_break()

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._tables:
            self._tables -= 1
            if not self._tables:
                self._close_row()
                super().handle_endtag(tag)
        elif not self._tables:
            super().handle_endtag(tag)
        elif tag == "tr" and self._tables == 1:
            self._close_row()
        elif tag in ("td", "th") and self._tables == 1:
            self._close_cell()
        elif tag in _CELL_BLOCKS and self._cell is not None:
            self._cell_line_break()

    def handle_data(self, data: str) -> None:
        if not self._tables:
            super().handle_data(data)
        elif self._cell is not None:
            if self._after_br and data.startswith("\n"):
                data = data[1:]
            self._after_br = False
            self._cell.append(data)


def _read_html(html: str, labels: _Labels) -> _Reading:
    reader = _FormHtmlReader()
    try:
        reader.feed(html)
        reader.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was read
        pass
    reader._close_row()
    reading = _Reading()
    for cells in reader.rows:
        if len(cells) < 2:  # a section heading, <th colspan="2">
            continue
        written = cells[0].strip()
        key = labels.keys.get(normalise_label(written))
        if key is None:
            if written:
                reading.note(f"unrecognised field {written[:120]!r} ignored")
            continue
        value = cells[1]
        value = trim_blank_lines(value.split("\n")) if key == CONCERN_TEXT else value.strip()
        reading.fields.append((key, written, value))
    # Reference and Submitted sit in paragraphs around the table.
    around = _read_plain(tidy_lines("".join(reader.chunks)), labels)
    reading.fields.extend(around.fields)
    for note in around.notes:
        reading.note(note)
    return reading


# --- From fields to a contact -------------------------------------------------------


def _fill(contact: ParsedContact, reading: _Reading, labels: _Labels, config: Config) -> None:
    values: dict[str, str] = {}
    repeated: dict[str, str] = {}
    for key, written, value in reading.fields:
        if key in values:
            repeated.setdefault(key, written)
        else:
            values[key] = value
    for written in repeated.values():
        contact.problems.append(f"field {written!r} appears more than once; the first is used")

    def get(key: str) -> str:
        return values.get(key, "")

    submitter, prisoner = contact.submitter, contact.prisoner
    contact.portal_reference = get("reference")
    submitter.name = get("submitter_name")
    submitter.phone = get("submitter_phone")
    submitter.relationship = get("relationship")
    submitter.contact_preference = get("contact_preference")
    if get("submitter_email"):
        submitter.email, submitter.email_valid = check_email_address(get("submitter_email"))
        if not submitter.email_valid:
            contact.flag(Flag.INVALID_EMAIL)
            contact.problems.append(f"email address {submitter.email!r} is not valid")

    prisoner.name = get("prisoner_name")
    prisoner.number_as_typed = get("prisoner_number")
    prisoner.number = normalise_prisoner_number(prisoner.number_as_typed)
    if prisoner.number_as_typed and not prisoner.number:
        contact.problems.append(
            f"prisoner number {prisoner.number_as_typed!r} is not of the form A1234BC"
        )
    prisoner.dob_as_typed = get("prisoner_dob")
    prisoner.dob = _parse_date(prisoner.dob_as_typed)
    if prisoner.dob_as_typed and prisoner.dob is None:
        contact.problems.append(f"date of birth {prisoner.dob_as_typed!r} is not a dd/mm/yyyy date")
    prisoner.establishment = get("establishment")
    prisoner.location = get("location")
    if _names_another_prison(prisoner.establishment, config.prison.name):
        contact.flag(Flag.WRONG_ESTABLISHMENT)
        contact.problems.append(
            f"the form names {prisoner.establishment!r}, not {config.prison.name!r}"
        )

    contact.urgency_choice = get("urgency")
    contact.topic = get("topic")
    contact.concern_text = get(CONCERN_TEXT)
    contact.consent_tell_prisoner = get("consent_tell_prisoner")
    contact.consent_understood = get("consent_understood")
    contact.submitted_at = _parse_submitted(get("submitted"))
    if get("submitted") and contact.submitted_at is None:
        contact.flag(Flag.NEEDS_REVIEW)
        contact.problems.append(f"submission time {get('submitted')!r} is not dd/mm/yyyy HH:MM")

    required = [key for key in labels.written if key not in OPTIONAL_FIELDS]
    absent = [labels.written[key] for key in required if key not in values]
    blank = [labels.written[key] for key in required if key in values and not values[key]]
    if absent:
        contact.problems.append("missing field " + ", ".join(map(repr, absent)))
    if blank:
        contact.problems.append("blank field " + ", ".join(map(repr, blank)))
    if absent or blank:
        contact.flag(Flag.NEEDS_REVIEW)


def _parse_date(typed: str) -> date | None:
    match = _DATE.fullmatch(typed.strip())
    if match is None:
        return None
    day, month, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _parse_submitted(typed: str) -> datetime | None:
    match = _DATE_TIME.fullmatch(typed.strip())
    if match is None:
        return None
    day, month, year, hour, minute = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, tzinfo=LONDON)
    except ValueError:
        return None


def _prison_key(name: str) -> str:
    words = _WORD.findall(name.casefold())
    start, end = 0, len(words)
    while start < end and words[start] in _PRISON_PREFIXES:
        start += 1
    while end > start and words[end - 1] in _PRISON_SUFFIXES:
        end -= 1
    return " ".join(words[start:end])


def _names_another_prison(typed: str, ours: str) -> bool:
    typed_key, our_key = _prison_key(typed), _prison_key(ours)
    return bool(typed_key and our_key and typed_key != our_key)
