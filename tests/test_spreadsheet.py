"""The xlsx export: whole local days, real dates and numbers, and a family's text that
never becomes a formula, read back with openpyxl and, where installed, LibreOffice."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.orm import Session

from mailbot import db
from mailbot.config import Config
from mailbot.db.models import ConcernAction, Contact, Draft, StoredMessage
from mailbot.reports import spreadsheet
from mailbot.reports.spreadsheet import FIGURES_SHEET, LOG_COLUMNS, LOG_SHEET, write_xlsx

HOSTILE_NAME = '=HYPERLINK("http://evil","x")'
APRIL = (date(2026, 4, 1), date(2026, 4, 30))
NOW = datetime(2026, 5, 2, 9, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# A stand-in for mailbot.reports.figures.figures_for_months, so that the log sheet and the
# figures sheet's layout are tested whatever the real figures come to.
@dataclass(frozen=True)
class StubFigure:
    key: str
    label: str
    numerator: int
    denominator: int
    basis: str = "contacts received"

    @property
    def percent(self) -> float | None:
        return 100 * self.numerator / self.denominator if self.denominator else None


@dataclass
class StubMonthFigures:
    month: date
    figures: list[StubFigure]
    tables: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def stub_figures_for_months(
    session: Session, config: Config, first: date, last: date, now: datetime | None = None
) -> list[StubMonthFigures]:
    return [
        StubMonthFigures(
            month=date(first.year, first.month, 1),
            figures=[
                StubFigure("responded_in_time", "Responded within 24 hours", 3, 4),
                StubFigure("acct_opened", "ACCT opened", 0, 0),
            ],
            tables={"by_type": [("mental_health", 2), ("=1+1", 1)]},
            breaches=["SC-2026-00003"],
            notes=["1 of these contacts has been anonymised."],
        )
    ]


@pytest.fixture
def stub_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spreadsheet, "figures_for_months", stub_figures_for_months)


def add_contact(session: Session, n: int, received_at: datetime, **fields: object) -> Contact:
    message = StoredMessage(
        sha256=hashlib.sha256(str(n).encode()).hexdigest(),
        message_id=f"<{n}@example.org>",
        mailbox_folder="INBOX",
        received_at=received_at,
        size=100,
        kind="portal_form",
        disposition="logged",
        raw=b"",
    )
    values: dict[str, object] = {
        "reference": f"SC-2026-{n:05d}",
        "source": "portal_form",
        "verified": True,
        "status": "new",
        "urgency": "urgent",
    } | fields
    contact = Contact(message=message, received_at=received_at, **values)
    session.add(contact)
    session.flush()
    return contact


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def log(session: Session) -> Session:
    """A small log around April 2026 (BST: UTC+1), with its boundary cases."""
    first = add_contact(
        session, 1, utc(2026, 3, 31, 23, 30),  # 00:30 on 1 April in London
        submitter_name=HOSTILE_NAME,
        relationship_to_prisoner="-1+1",
        prisoner_name="John Smith",
        prisoner_number="A1234BC",
        location="Houseblock 2",
        categories=["suicide_self_harm", "mental_health"],
        urgency="immediate",
        verified=False,
        responded_at=utc(2026, 4, 1, 9, 36),
        responded_by="Officer B",
        status="responded",
    )
    session.add_all([
        ConcernAction(contact=first, kind="welfare_check", happened_at=utc(2026, 4, 1, 8),
                      by="Officer A"),
        ConcernAction(contact=first, kind="referral", department="mental_health",
                      happened_at=utc(2026, 4, 1, 9), by="Officer A"),
        ConcernAction(contact=first, kind="referral_follow_up", department="mental_health",
                      happened_at=utc(2026, 4, 2, 9), by="Officer C"),
        ConcernAction(contact=first, kind="referral", department="chaplaincy",
                      happened_at=utc(2026, 4, 1, 9, 5), by="Officer A"),
        # A follow-up dated before its referral does not follow it up.
        ConcernAction(contact=first, kind="referral_follow_up", department="security",
                      happened_at=utc(2026, 4, 1, 9, 6), by="Officer D"),
        ConcernAction(contact=first, kind="referral", department="security",
                      happened_at=utc(2026, 4, 1, 9, 7), by="Officer A"),
        Draft(contact=first, template="acknowledgement", consent_scope="wellbeing",
              status="sent", message_id="<draft-1@prison.example>"),
    ])
    add_contact(session, 2, utc(2026, 3, 31, 22, 59))  # 23:59 on 31 March: outside
    add_contact(
        session, 3, utc(2026, 4, 30, 22, 59),  # 23:59 on 30 April: inside
        submitter_name="Mary\x00 Smith\x0b",
        prisoner_name="Bob\x1b Jones",
        outcome="#N/A",
        status="closed",
        closed_at=utc(2026, 5, 1, 10),
        closed_by="SO Green",
    )
    add_contact(session, 4, utc(2026, 4, 30, 23, 0))  # midnight into 1 May: outside
    add_contact(session, 5, utc(2026, 6, 15, 12))
    add_contact(
        session, 6, utc(2026, 4, 14, 9),  # a Tuesday, 10:00 in London
        source="direct_email", verified=False, submitter_name="@cmd|' /C calc'!A0",
        is_safer_custody=False, urgency="not_safer_custody", categories=["visits"],
    )
    session.commit()
    return session


def export(session: Session, config: Config, path: Path, now: datetime = NOW) -> Path:
    return write_xlsx(session, config, *APRIL, path / "log.xlsx", now=now)


def log_sheet(path: Path) -> Worksheet:
    sheet = load_workbook(path)[LOG_SHEET]
    assert isinstance(sheet, Worksheet)
    return sheet


def rows_by_reference(sheet: Worksheet) -> dict[str, dict[str, object]]:
    headers = [cell.value for cell in sheet[1]]
    rows = {}
    for row in sheet.iter_rows(min_row=2, values_only=True):
        record = dict(zip(headers, row, strict=True))
        rows[str(record["Our reference"])] = record
    return rows


@pytest.mark.usefixtures("stub_figures")
def test_contacts_are_taken_by_whole_london_days_in_bst(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    rows = rows_by_reference(log_sheet(export(log, offline_config, tmp_path)))
    assert list(rows) == ["SC-2026-00001", "SC-2026-00006", "SC-2026-00003"]


@pytest.mark.usefixtures("stub_figures")
def test_header_is_bold_frozen_and_filtered(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    sheet = log_sheet(export(log, offline_config, tmp_path))
    assert [cell.value for cell in sheet[1]] == [column.header for column in LOG_COLUMNS]
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:X{sheet.max_row}"
    assert sheet.max_row == 4
    assert all(sheet.column_dimensions[c].width > 8 for c in "ABCDEFGHIJKLMNOPQRSTUVWX")


@pytest.mark.usefixtures("stub_figures")
def test_received_and_response_are_real_local_datetimes_and_hours_a_number(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    sheet = log_sheet(export(log, offline_config, tmp_path))
    received, sent_at, hours = sheet["A2"], sheet["Q2"], sheet["R2"]
    assert received.value == datetime(2026, 4, 1, 0, 30)  # BST, naive for Excel
    assert received.is_date and received.number_format == "dd/mm/yyyy hh:mm"
    assert sent_at.value == datetime(2026, 4, 1, 10, 36)
    assert hours.data_type == "n" and hours.value == 10.1
    assert sheet["R3"].value is None  # no response yet: blank, not zero


@pytest.mark.usefixtures("stub_figures")
def test_a_family_s_text_is_never_a_formula(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    sheet = log_sheet(export(log, offline_config, tmp_path))
    for ref, text in (("E2", HOSTILE_NAME), ("F2", "-1+1"), ("S4", "#N/A"),
                      ("E3", "@cmd|' /C calc'!A0")):
        cell = sheet[ref]
        assert (cell.value, cell.data_type) == (text, "s"), ref
    assert sheet["E2"].quotePrefix and sheet["F2"].quotePrefix
    assert not sheet["G2"].quotePrefix  # ordinary text is left alone


@pytest.mark.usefixtures("stub_figures")
def test_control_characters_are_dropped_not_fatal(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    rows = rows_by_reference(log_sheet(export(log, offline_config, tmp_path)))
    assert rows["SC-2026-00003"]["Contact name"] == "Mary Smith"
    assert rows["SC-2026-00003"]["Prisoner name"] == "Bob Jones"


@pytest.mark.usefixtures("stub_figures")
def test_row_says_what_was_done_for_the_concern(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    rows = rows_by_reference(log_sheet(export(log, offline_config, tmp_path)))
    first, email, closed = rows["SC-2026-00001"], rows["SC-2026-00006"], rows["SC-2026-00003"]
    assert first["In office hours"] == "No" and email["In office hours"] == "Yes"
    assert first["Method"] == "Portal form (unverified)" and email["Method"] == "Email"
    assert closed["Method"] == "Portal form"
    assert first["Type of concern"] == "Suicide or self-harm; Mental health"
    assert first["Urgency"] == "Immediate" and first["Safer custody"] == "Yes"
    assert email["Safer custody"] == "No"
    assert first["Actions"] == (
        "Welfare check 01/04/2026 09:00 by Officer A; "
        "Referral (Mental health) 01/04/2026 10:00 by Officer A; "
        "Referral follow-up (Mental health) 02/04/2026 10:00 by Officer C; "
        "Referral (Chaplaincy) 01/04/2026 10:05 by Officer A; "
        "Referral follow-up (Security) 01/04/2026 10:06 by Officer D; "
        "Referral (Security) 01/04/2026 10:07 by Officer A"
    )
    assert first["Referrals"] == (
        "Mental health (follow-up recorded: yes); Chaplaincy (follow-up recorded: no); "
        "Security (follow-up recorded: no)"
    )
    assert first["Consent"] == "wellbeing" and email["Consent"] is None
    assert (first["Response sent"], closed["Response sent"]) == ("Yes", "No")
    assert first["Logged by"] == "mailbot (automatic)"
    assert first["Responded by"] == "Officer B"
    assert (first["Status"], closed["Status"]) == ("Responded", "Closed")
    assert closed["Closed at"] == datetime(2026, 5, 1, 11, 0)
    assert closed["Closed by"] == "SO Green"


@pytest.mark.usefixtures("stub_figures")
def test_monthly_figures_are_numbers_with_percent_format(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    sheet = load_workbook(export(log, offline_config, tmp_path))[FIGURES_SHEET]
    assert isinstance(sheet, Worksheet)
    headers = [c.value for c in sheet[1]]
    assert headers == [
        "Month", "Figure", "Numerator", "Denominator", "Out of", "Percent", "Key", None,
        "Month", "Table", "Item", "Count", None,
        "Month", "Response deadline breached", None,
        "Month", "Note",
    ]
    assert sheet.freeze_panes == "A2"
    month, label, numerator, denominator, basis, percent, key = sheet[2][:7]
    assert month.value == datetime(2026, 4, 1) and month.number_format == "mmm yyyy"
    assert (label.value, numerator.value, denominator.value, basis.value, key.value) == (
        "Responded within 24 hours", 3, 4, "contacts received", "responded_in_time")
    assert percent.value == 0.75 and percent.number_format == "0.0%"
    assert sheet["F3"].value is None  # 0 of 0 is no percentage at all
    assert [c.value for c in sheet[2][8:12]] == [datetime(2026, 4, 1), "By type",
                                                 "Mental health", 2]
    assert [c.value for c in sheet[3][8:12]] == [datetime(2026, 4, 1), "By type", "=1+1", 1]
    assert sheet["K3"].data_type == "s"
    assert sheet["O2"].value == "SC-2026-00003"
    assert sheet["R2"].value == "1 of these contacts has been anonymised."
    assert {name: ref for name, ref in sheet.tables.items()} == {
        "Figures": "A1:G3", "Tables": "I1:L3", "Breaches": "N1:O2", "Notes": "Q1:R2"}


def test_monthly_figures_from_the_real_figures_module(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    later = datetime(2026, 5, 10, 9, 0, tzinfo=UTC)
    sheet = load_workbook(export(log, offline_config, tmp_path, later))[FIGURES_SHEET]
    assert isinstance(sheet, Worksheet)
    figures = {
        row[6]: row for row in sheet.iter_rows(min_row=2, max_col=7, values_only=True)
        if row[0] is not None
    }
    assert {row[0] for row in figures.values()} == {datetime(2026, 4, 1)}
    # April: contacts 1, 3 and 6, of which 6 is not safer custody and 1 was answered.
    assert figures["contacts_received"][2:4] == (3, 3)
    assert figures["responded"][2:4] == (1, 2)
    assert figures["responded"][5] == 0.5
    assert figures["referrals_without_follow_up"][2:4] == (2, 3)
    tables = [row for row in sheet.iter_rows(min_row=2, min_col=9, max_col=12,
                                             values_only=True) if row[0] is not None]
    assert (datetime(2026, 4, 1), "By type", "Suicide or self-harm", 1) in tables
    assert (datetime(2026, 4, 1), "Referrals by department", "Chaplaincy", 1) in tables
    # The export's `now` decides what is overdue: 1 was answered in 10.1 hours, 3 is
    # still unanswered more than 72 hours on, 6 is not safer custody.
    breaches = [row[0] for row in sheet.iter_rows(min_row=2, min_col=15, max_col=15,
                                                  values_only=True) if row[0]]
    assert breaches == ["SC-2026-00003"]


# LibreOffice's CSV filter: comma, double quote, UTF-8, and the cells as shown (number
# formats applied), so dates come out as a person sees them in the sheet.
CSV_AS_SHOWN = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true"


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.usefixtures("stub_figures")
def test_libreoffice_opens_it_and_keeps_hostile_text_literal(
    log: Session, offline_config: Config, tmp_path: Path
) -> None:
    program = soffice()
    if program is None:
        pytest.skip("LibreOffice is not installed (Debian: libreoffice-calc-nogui)")
    path = export(log, offline_config, tmp_path)
    out = tmp_path / "csv"
    subprocess.run(
        [program, f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}",
         "--headless", "--convert-to", CSV_AS_SHOWN, "--outdir", str(out), str(path)],
        check=True, capture_output=True, timeout=180,
    )
    with (out / "log.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Our reference"] for row in rows] == [
        "SC-2026-00001", "SC-2026-00006", "SC-2026-00003"]
    assert rows[0]["Contact name"] == HOSTILE_NAME  # not "x", the formula's result
    assert rows[0]["Relationship"] == "-1+1"  # not 0
    assert rows[1]["Contact name"] == "@cmd|' /C calc'!A0"
    assert rows[2]["Outcome"] == "#N/A"
    assert rows[0]["Received"] == "01/04/2026 00:30"
    assert rows[0]["Hours to first response"] == "10.1"
