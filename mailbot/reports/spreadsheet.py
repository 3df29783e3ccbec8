"""The communications log as an Excel workbook: decides which contacts fall in a date
range (whole Europe/London days), how each becomes one row a safety team can sort and
filter, and that nothing a family typed can ever run as a formula.

Sheet 1, "Communications log", has one row per contact received in the range; sheet 2,
"Monthly figures", has the figures of `mailbot.reports.figures` for each month in the range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailbot.config import Config
from mailbot.db.models import ConcernAction, Contact, utcnow
from mailbot.parsers.contact import Source
from mailbot.reports.figures import figures_for_months, followed_up
from mailbot.reports.office_hours import in_office_hours

LOG_SHEET = "Communications log"
FIGURES_SHEET = "Monthly figures"
LOGGED_BY = "mailbot (automatic)"
DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
HOURS_FORMAT = "0.0"
PERCENT_FORMAT = "0.0%"
MONTH_FORMAT = "mmm yyyy"

# A cell that starts with one of these is a formula (or DDE) to Excel or LibreOffice
# once someone edits it; written as text with the "quote prefix" it stays text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

_CATEGORY_LABELS = {
    "suicide_self_harm": "Suicide or self-harm",
    "mental_health": "Mental health",
    "physical_health_medication": "Physical health or medication",
    "bullying_violence_threats": "Bullying, violence or threats",
    "debt": "Debt",
    "drugs_alcohol": "Drugs or alcohol",
    "bereavement": "Bereavement",
    "new_to_custody": "New to custody",
    "loss_of_contact": "Loss of contact",
    "staff_conduct": "Staff conduct",
    "visits": "Visits",
    "property": "Property",
    "money": "Money",
    "phone_pin": "Phone PIN",
    "letters": "Letters",
    "release_transfer": "Release or transfer",
    "complaint": "Complaint",
    "other": "Other",
}
_ACTION_LABELS = {
    "welfare_check": "Welfare check",
    "referral": "Referral",
    "referral_follow_up": "Referral follow-up",
    "acct_opened": "ACCT opened",
    "acct_reviewed": "ACCT reviewed",
    "csip_referral": "CSIP referral",
    "nomis_updated": "NOMIS updated",
    "call_back": "Call back",
    "outcome": "Outcome",
}
_DEPARTMENT_LABELS = {
    "healthcare": "Healthcare",
    "mental_health": "Mental health",
    "chaplaincy": "Chaplaincy",
    "family_services": "Family services",
    "security": "Security",
    "omu": "OMU",
    "substance_misuse": "Substance misuse",
}
_URGENCY_LABELS = {
    "immediate": "Immediate",
    "urgent": "Urgent",
    "routine": "Routine",
    "not_safer_custody": "Not safer custody",
}

# The raw keys the figures' tables count by, as the report shows them.
_ITEM_LABELS = {
    **_DEPARTMENT_LABELS, **_CATEGORY_LABELS, **_URGENCY_LABELS,
    "unknown": "Not recorded", "uncategorised": "Uncategorised",
}


@dataclass(frozen=True)
class Column:
    """One column of a sheet: its header, how wide it may grow, and its number format."""

    header: str
    max_width: int = 30
    number_format: str | None = None
    wrap: bool = False


LOG_COLUMNS: tuple[Column, ...] = (
    Column("Received", 17, DATETIME_FORMAT),
    Column("In office hours", 10),
    Column("Method", 24),
    Column("Our reference", 16),
    Column("Contact name", 28),
    Column("Relationship", 18),
    Column("Prisoner name", 28),
    Column("Prisoner number", 12),
    Column("Location", 20),
    Column("Type of concern", 40, wrap=True),
    Column("Urgency", 12),
    Column("Safer custody", 10),
    Column("Actions", 60, wrap=True),
    Column("Referrals", 40, wrap=True),
    Column("Consent", 12),
    Column("Response sent", 10),
    Column("Response sent at", 17, DATETIME_FORMAT),
    Column("Hours to first response", 10, HOURS_FORMAT),
    Column("Outcome", 50, wrap=True),
    Column("Logged by", 20),
    Column("Responded by", 24),
    Column("Status", 14),
    Column("Closed at", 17, DATETIME_FORMAT),
    Column("Closed by", 24),
)

FIGURE_COLUMNS: tuple[Column, ...] = (
    Column("Month", 10, MONTH_FORMAT),
    Column("Figure", 60, wrap=True),
    Column("Numerator", 11),
    Column("Denominator", 12),
    Column("Out of", 30),
    Column("Percent", 9, PERCENT_FORMAT),
    Column("Key", 30),
)
TABLE_COLUMNS: tuple[Column, ...] = (
    Column("Month", 10, MONTH_FORMAT),
    Column("Table", 30),
    Column("Item", 40, wrap=True),
    Column("Count", 8),
)
BREACH_COLUMNS: tuple[Column, ...] = (
    Column("Month", 10, MONTH_FORMAT),
    Column("Response deadline breached", 30, wrap=True),
)
NOTE_COLUMNS: tuple[Column, ...] = (
    Column("Month", 10, MONTH_FORMAT),
    Column("Note", 80, wrap=True),
)


def write_xlsx(
    session: Session,
    config: Config,
    start: date,
    end: date,
    output: Path,
    now: datetime | None = None,
) -> Path:
    """Write the log of contacts received from `start` to `end` (whole local days,
    both included) and the monthly figures for those months to `output`; returns it."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    zone = ZoneInfo(config.office_hours.timezone)
    workbook = Workbook()
    log_sheet = workbook.active or workbook.create_sheet()
    log_sheet.title = LOG_SHEET
    contacts = contacts_received(session, zone, start, end)
    _write_table(
        log_sheet, LOG_COLUMNS, [log_row(contact, config, zone) for contact in contacts]
    )
    log_sheet.auto_filter.ref = log_sheet.dimensions
    log_sheet.page_setup.paperSize = log_sheet.PAPERSIZE_A3  # 24 columns on one page
    now = now or utcnow()
    _write_figures(workbook.create_sheet(FIGURES_SHEET), session, config, start, end, now)

    stamp = _local(now, zone)
    workbook.properties.creator = LOGGED_BY
    workbook.properties.title = f"{LOG_SHEET} {start.isoformat()} to {end.isoformat()}"
    workbook.properties.created = workbook.properties.modified = stamp
    output.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(output)
    return output


def contacts_received(session: Session, zone: ZoneInfo, start: date, end: date) -> list[Contact]:
    """The contacts received from the first moment of `start` to the last of `end`, local
    time: a contact at 00:30 BST on the 1st belongs to that day, not the 31st before."""
    since = datetime.combine(start, time(0), zone).astimezone(UTC)
    until = datetime.combine(end + timedelta(days=1), time(0), zone).astimezone(UTC)
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.received_at >= since, Contact.received_at < until)
            .options(selectinload(Contact.actions), selectinload(Contact.drafts))
            .order_by(Contact.received_at, Contact.id)
        )
    )


def log_row(contact: Contact, config: Config, zone: ZoneInfo) -> list[Any]:
    """The contact as the values of one log row, in the order of `LOG_COLUMNS`."""
    c = contact
    return [
        _local(c.received_at, zone),
        _yes_no(in_office_hours(c.received_at, config.office_hours)),
        _method(c),
        c.reference,
        c.submitter_name,
        c.relationship_to_prisoner,
        c.prisoner_name,
        c.prisoner_number or c.prisoner_number_as_typed,
        c.location,
        "; ".join(_label(_CATEGORY_LABELS, x) for x in c.categories),
        _label(_URGENCY_LABELS, c.urgency),
        _yes_no(c.is_safer_custody),
        "; ".join(_action_summary(a, zone) for a in c.actions),
        _referrals(c),
        c.drafts[0].consent_scope if c.drafts else "",
        _yes_no(c.responded_at is not None),
        _local(c.responded_at, zone),
        _hours(c.received_at, c.responded_at),
        _outcome(c),
        LOGGED_BY,
        c.responded_by or "",
        _status(c),
        _local(c.closed_at, zone),
        c.closed_by or "",
    ]


def safe_text(value: str) -> str:
    """The text as a cell may hold it: control characters a workbook cannot store are
    dropped rather than failing the whole export."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def put(cell: Cell, value: Any, number_format: str | None = None) -> None:
    """Store `value` in `cell`; a string is always stored as text, never as a formula
    or an error code, whatever it starts with."""
    if isinstance(value, str):
        text = safe_text(value)
        cell.value = text
        cell.data_type = "s"  # openpyxl makes "=..." a formula and "#N/A" an error
        if text.startswith(_FORMULA_STARTS):
            cell.quotePrefix = True  # Excel's leading apostrophe: stays text when edited
        return
    cell.value = value
    if number_format and value is not None:
        cell.number_format = number_format


def _write_table(
    sheet: Worksheet,
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    first_column: int = 1,
) -> str:
    """Write a header row and `rows` from `first_column`; returns the range written."""
    widths = [0 for _ in columns]
    for offset, column in enumerate(columns):
        cell = sheet.cell(row=1, column=first_column + offset)
        put(cell, column.header)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(vertical="top")
    last_row = 1
    for last_row, values in enumerate(rows, start=2):
        for offset, (column, value) in enumerate(zip(columns, values, strict=True)):
            cell = sheet.cell(row=last_row, column=first_column + offset)
            put(cell, value, column.number_format)
            if column.wrap:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
            widths[offset] = max(widths[offset], _display_width(value, column))
    for offset, column in enumerate(columns):
        letter = get_column_letter(first_column + offset)
        fitted = max(len(column.header), min(widths[offset], column.max_width))
        sheet.column_dimensions[letter].width = fitted + 3
    sheet.freeze_panes = "A2"
    # Printed: landscape, as wide as the page, the header row on every page.
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"
    return (
        f"{get_column_letter(first_column)}1:"
        f"{get_column_letter(first_column + len(columns) - 1)}{last_row}"
    )


def _write_figures(
    sheet: Worksheet, session: Session, config: Config, start: date, end: date, now: datetime
) -> None:
    """The figures, the breakdown tables, the breaches and the notes side by side, each
    its own filterable table with the month on every row."""
    months = figures_for_months(session, config, start, end, now=now)
    blocks: list[tuple[str, tuple[Column, ...], list[list[Any]]]] = [
        ("Figures", FIGURE_COLUMNS, [
            [m.month, f.label, f.numerator, f.denominator, f.basis,
             _fraction(f.numerator, f.denominator), f.key]
            for m in months for f in m.figures
        ]),
        ("Tables", TABLE_COLUMNS, [
            [m.month, _humanise(name), _ITEM_LABELS.get(item, item), count]
            for m in months for name, rows in m.tables.items() for item, count in rows
        ]),
        ("Breaches", BREACH_COLUMNS, [[m.month, breach] for m in months for breach in m.breaches]),
        ("Notes", NOTE_COLUMNS, [[m.month, note] for m in months for note in m.notes]),
    ]
    first_column = 1
    for name, columns, rows in blocks:
        ref = _write_table(sheet, columns, rows, first_column)
        if rows:  # an Excel table needs at least one data row
            table = Table(displayName=name, ref=ref)
            table.tableStyleInfo = TableStyleInfo(name="TableStyleLight1", showRowStripes=True)
            sheet.add_table(table)
        first_column += len(columns) + 1  # one empty column between blocks


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    # Excel has no time zones: a naive wall-clock time in the prison's zone.
    return moment.astimezone(zone).replace(tzinfo=None) if moment is not None else None


def _hours(since: datetime, until: datetime | None) -> float | None:
    if until is None:
        return None
    return round((until - since).total_seconds() / 3600, 1)


def _fraction(numerator: int, denominator: int) -> float | None:
    # A fraction, shown as a percentage by the cell's number format.
    return numerator / denominator if denominator else None


def _yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def _method(contact: Contact) -> str:
    if contact.source == Source.PORTAL_FORM:
        return "Portal form" if contact.verified else "Portal form (unverified)"
    return "Email"


def _action_summary(action: ConcernAction, zone: ZoneInfo) -> str:
    when = _local(action.happened_at, zone)
    kind = _label(_ACTION_LABELS, action.kind)
    if action.department:
        kind += f" ({_label(_DEPARTMENT_LABELS, action.department)})"
    return f"{kind} {when:%d/%m/%Y %H:%M} by {action.by}" if when else kind


def _referrals(contact: Contact) -> str:
    """Each referral's department, and whether a follow-up to it has been recorded (as
    the monthly figures count it: same department, at or after the referral)."""
    return "; ".join(
        f"{_label(_DEPARTMENT_LABELS, a.department or 'unknown')} "
        f"(follow-up recorded: {_yes_no(followed_up(contact, a)).lower()})"
        for a in contact.actions
        if a.kind == "referral"
    )


def _outcome(contact: Contact) -> str:
    if contact.outcome:
        return contact.outcome
    recorded = [a.outcome or a.note for a in contact.actions if a.kind == "outcome"]
    return recorded[-1] if recorded else ""


def _status(contact: Contact) -> str:
    status = _humanise(contact.status)
    return f"{status} (anonymised)" if contact.anonymised_at else status


def _label(labels: dict[str, str], key: str) -> str:
    return labels.get(key) or _humanise(key)


def _humanise(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


def _display_width(value: Any, column: Column) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return len(DATETIME_FORMAT) + 2  # digits are wider than the format's letters
    if isinstance(value, date):
        return len(MONTH_FORMAT)
    return max((len(line) for line in str(value).splitlines()), default=0)


