"""The Reports page in headless Chromium (Playwright, /usr/bin/chromium) against a real
`mailbot web` on a log filled by `run --once` from Dovecot (test_web_browser's console): a
manager opens the report for the month and for a date range and sees the figures
`monthly_figures` and `period_figures` count; downloads the PDF (Playwright's download),
which opens and whose every page pdftoppm renders to PNG; the report timer's `report
--email` sends the safety team the same PDF with the page. An officer is refused and is
not offered the page. axe runs on every page; MAILBOT_SCREENSHOTS=docs writes
docs/console-report.png."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import func, select

from mailbot.db.models import Contact
from mailbot.reports.figures import first_of_month, monthly_figures, period_figures
from mailbot.reports.report import month_name, percent_text
from tests import test_web_browser
from tests.conftest import REPO
from tests.test_web_browser import OFFICER, Console

console = test_web_browser.console
page = test_web_browser.page

MANAGER = "Manager Jones"
SAFETY_TEAM = "safety.team@prison.example"

if not shutil.which("pdftoppm") or not shutil.which("pdftotext"):
    pytest.skip("pdftoppm and pdftotext (Debian's poppler-utils) are not installed: run "
                "./scripts/test, which installs them", allow_module_level=True)


def headline(page) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        "#headline tbody tr",
        "rows => Object.fromEntries(rows.map(r => [r.id.replace('figure-', ''),"
        " Array.from(r.children).map(c => c.innerText.trim()).join(' | ')]))")


def shows(page, figures) -> None:  # type: ignore[no-untyped-def]
    rows = headline(page)
    assert len(rows) == len(figures.figures) == 12
    for figure in figures.figures:
        assert rows[figure.key] == (f"{figure.label} | {figure.numerator} / "
                                    f"{figure.denominator} | {figure.basis} | "
                                    f"{percent_text(figure)}"), figure.key


def pdf_pages(path, tmp_path) -> list[Image.Image]:  # type: ignore[no-untyped-def]
    """Every page of the PDF rendered to PNG by pdftoppm, opened."""
    stem = tmp_path / "page"
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(path), str(stem)], check=True,
                   timeout=120)
    return [Image.open(p) for p in sorted(tmp_path.glob("page-*.png"))]


def test_a_manager_sees_the_report_and_downloads_the_pdf(console: Console, page, tmp_path):
    zone = ZoneInfo("Europe/London")
    today = datetime.now(UTC).astimezone(zone).date()
    this_month = first_of_month(today)
    with console.sessions() as session:
        received = session.scalar(select(func.count(Contact.id)))
        oldest = session.scalar(select(func.min(Contact.received_at)))
    first_day = oldest.replace(tzinfo=UTC).astimezone(zone).date()

    console.sign_in(page, MANAGER)
    page.get_by_role("link", name="Reports").click()
    page.wait_for_url(re.compile(r"/reports$"))
    console.check(page)
    last_month = first_of_month(this_month - timedelta(days=1))
    assert month_name(last_month) in page.inner_text("h1")  # the default

    page.get_by_label("A month").select_option(f"{this_month:%Y-%m}")
    console.submit(page, "Show the month")
    assert page.url.endswith(f"/reports?month={this_month:%Y-%m}")
    with console.sessions() as session:
        shows(page, monthly_figures(session, console_config(console), this_month))

    # A range that ends before it starts is shown again with the reason.
    for end, day in (("From", today), ("To", today - timedelta(days=1))):
        group = page.get_by_role("group", name=end)
        group.get_by_label("Day").fill(str(day.day))
        group.get_by_label("Month").fill(str(day.month))
        group.get_by_label("Year").fill(str(day.year))
    console.submit(page, "Show these dates")
    assert "before it starts" in page.inner_text(".govuk-error-summary")
    assert page.get_by_role("group", name="To").get_by_label("Day").input_value() == str(
        (today - timedelta(days=1)).day)  # what was typed is kept

    # A date range from the first contact's day to today: every contact of the log.
    for end, day in (("From", first_day), ("To", today)):  # GOV.UK's date input
        group = page.get_by_role("group", name=end)
        group.get_by_label("Day").fill(str(day.day))
        group.get_by_label("Month").fill(str(day.month))
        group.get_by_label("Year").fill(str(day.year))
    console.submit(page, "Show these dates")
    with console.sessions() as session:
        counted = period_figures(session, console_config(console), first_day, today)
    assert counted.figure("contacts_received").numerator == received
    shows(page, counted)
    if first_day.month == today.month and first_day != today:
        assert page.inner_text("h1").endswith(
            f"{first_day.day} {month_name(today)} to {today.day} {month_name(today)}")
    assert page.locator("#by-wing").inner_text().count("wing") >= 3
    if os.environ.get("MAILBOT_SCREENSHOTS"):
        page.set_viewport_size({"width": 1280, "height": 1900})  # to the first chart
        page.screenshot(path=str(REPO / os.environ["MAILBOT_SCREENSHOTS"]
                                 / "console-report.png"))
        page.set_viewport_size({"width": 1280, "height": 900})

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Download the report (PDF)").click()
    download = waiting.value
    assert download.suggested_filename == (
        f"report-{first_day.isoformat()}-to-{today.isoformat()}.pdf")
    pdf = tmp_path / download.suggested_filename
    download.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = " ".join(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                                   capture_output=True, text=True).stdout.split())
    for figure in counted.figures:
        assert f"{figure.numerator} / {figure.denominator}" in text, figure.key
    assert "Grace" not in text and "Johnny" not in text  # figures, not families' names
    rendered = pdf_pages(pdf, tmp_path)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert len(rendered) == int(re.search(r"Pages:\s+(\d+)", info).group(1)) >= 2
    for image in rendered:  # A4 portrait at 60 dpi, and something drawn on it
        width, height = image.size
        assert abs(width - 496) <= 1 and abs(height - 702) <= 1, image.size
        assert image.convert("L").getextrema()[0] < 100
    first_page = rendered[0].convert("RGB")
    assert (29, 112, 184) in {first_page.getpixel((x, y))  # the header's GOV.UK blue rule
                              for x in range(0, 490, 2) for y in range(0, 250, 2)}

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Download the log for these dates (xlsx)").click()
    assert waiting.value.suggested_filename.endswith(f"-to-{today.isoformat()}.xlsx")

    # The report timer: the safety team gets the same PDF, with the page.
    code, output = console.cli("report", "--month", f"{this_month:%Y-%m}", "--output",
                               str(tmp_path / "reports"), "--email")
    assert code == 0, output
    [emailed] = [m for m in console.smtp_sink.parsed() if SAFETY_TEAM in str(m["To"])
                 and m.get_content_type() == "multipart/mixed"]
    names = [part.get_filename() for part in emailed.iter_attachments()]
    assert names == [f"report-{this_month:%Y-%m}.pdf", f"report-{this_month:%Y-%m}.html"]
    [attached] = [p for p in emailed.iter_attachments() if p.get_filename().endswith(".pdf")]
    assert attached.get_payload(decode=True) == (
        tmp_path / "reports" / f"report-{this_month:%Y-%m}.pdf").read_bytes()


def test_an_officer_is_refused_the_reports(console: Console, page):
    console.sign_in(page, OFFICER)
    assert page.get_by_role("link", name="Reports").count() == 0
    for path in ("/reports/pdf?month=2026-11", "/reports/xlsx?month=2026-11"):
        assert page.request.get(console.base_url + path).status == 403, path  # her cookie
    answer = page.goto(console.base_url + "/reports")
    assert answer.status == 403
    console.check(page)
    assert "It needs the manager role" in page.inner_text("main")


def console_config(console: Console):  # type: ignore[no-untyped-def]
    from mailbot import config as config_module

    return config_module.load(console.config_path)
