"""The console's Reports page through Starlette's TestClient on the seeded log: a
manager sees a month's figures (the same `monthly_figures` as `mailbot report`), a date
range's (the same `period_figures`), downloads the PDF and the xlsx log, each download
audited; an officer is refused; a wrong month or range is a 400 saying why."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from mailbot.db.models import AuditEvent
from mailbot.reports.figures import monthly_figures, period_figures
from mailbot.reports.report import percent_text
from tests.seed import SEED_NOW, seed_log
from tests.test_report_pdf import pdf_text
from tests.test_web_security import app, signed_in  # noqa: F401 - the fixture

NOVEMBER = date(2026, 11, 1)


@pytest.fixture
def seeded(app):  # type: ignore[no-untyped-def]  # noqa: F811
    with app.state.sessions() as session:
        seed_log(session, app.state.web.config)
        session.commit()
    return app


def figure_rows(html: str) -> dict[str, str]:
    rows = re.findall(r'<tr class="govuk-table__row" id="figure-([a-z_0-9]+)">(.*?)</tr>',
                      html, re.S)
    return {key: " ".join(re.sub(r"<[^>]+>", " ", row).split()) for key, row in rows}


def test_a_manager_sees_the_months_figures(seeded):
    browser, _ = signed_in(seeded, "Manager Jones")
    answer = browser.get("/reports?month=2026-11")
    assert answer.status_code == 200, answer.text[-2000:]
    rows = figure_rows(answer.text)
    with seeded.state.sessions() as session:
        # the page's clock is now, which only moves unanswered contacts into "overdue"
        figures = monthly_figures(session, seeded.state.web.config, NOVEMBER)
    assert len(rows) == len(figures.figures) == 12
    for figure in figures.figures:
        assert f"{figure.numerator} / {figure.denominator}" in rows[figure.key]
        assert percent_text(figure) in rows[figure.key]
    assert "November 2026" in answer.text
    assert 'href="/reports/pdf?month=2026-11"' in answer.text
    assert 'href="/reports/xlsx?month=2026-11"' in answer.text


def test_the_default_is_last_month(seeded):
    browser, _ = signed_in(seeded, "Manager Jones")
    answer = browser.get("/reports")
    assert answer.status_code == 200
    today = date.today()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    assert f'href="/reports/pdf?month={last_month:%Y-%m}"' in answer.text


def test_a_date_range(seeded):
    browser, _ = signed_in(seeded, "Admin Patel")
    answer = browser.get("/reports?from=2026-11-03&to=2026-11-14")
    assert answer.status_code == 200
    with seeded.state.sessions() as session:
        counted = period_figures(session, seeded.state.web.config, date(2026, 11, 3),
                                 date(2026, 11, 14))
    rows = figure_rows(answer.text)
    for figure in counted.figures:
        assert f"{figure.numerator} / {figure.denominator}" in rows[figure.key]
    assert "3 November 2026 to 14 November 2026" in answer.text
    typed = browser.get("/reports?from-day=3&from-month=11&from-year=2026&to-day=14"
                        "&to-month=11&to-year=2026")  # the form's day, month and year
    assert figure_rows(typed.text) == rows
    assert 'name="to-day" type="text" inputmode="numeric" value="14"' in typed.text
    assert 'href="/reports/pdf?from=2026-11-03&amp;to=2026-11-14"' in answer.text
    # a whole month asked as a range is the month's report
    whole = browser.get("/reports?from=2026-11-01&to=2026-11-30")
    assert 'href="/reports/pdf?month=2026-11"' in whole.text


@pytest.mark.parametrize("query, says", [
    ("month=November", "is not a month like 2026-11"),
    ("from=2026-11-14&to=2026-11-03", "ends (03/11/2026) before it starts"),
    ("from=2026-11-14&to=", "Enter the range&#39;s last day as a real date"),
    ("from=1900-01-01&to=2100-12-31", "A range can be up to 731 days long"),
    ("from-day=31&from-month=2&from-year=2026&to-day=1&to-month=3&to-year=2026",
     "Enter the range&#39;s first day as a real date"),
])
def test_a_wrong_period_says_why(seeded, query, says):
    browser, _ = signed_in(seeded, "Manager Jones")
    answer = browser.get(f"/reports?{query}")
    assert answer.status_code == 400 and says in answer.text
    assert browser.get(f"/reports/pdf?{query}").status_code == 400


def test_an_officer_is_refused(seeded):
    browser, _ = signed_in(seeded, "Officer Smith")
    for url in ("/reports", "/reports/pdf?month=2026-11", "/reports/xlsx?month=2026-11"):
        assert browser.get(url).status_code == 403, url
    assert 'href="/reports"' not in browser.get("/queue").text


def test_the_pdf_and_the_xlsx_download_and_are_audited(seeded):
    browser, _ = signed_in(seeded, "Manager Jones")
    pdf = browser.get("/reports/pdf?month=2026-11")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert 'filename="report-2026-11.pdf"' in pdf.headers["content-disposition"]
    assert pdf.content.startswith(b"%PDF-")
    text = pdf_text(pdf.content)
    with seeded.state.sessions() as session:
        figures = monthly_figures(session, seeded.state.web.config, NOVEMBER, now=SEED_NOW)
    assert "Contacts from families: November 2026" in text
    received = figures.figure("contacts_received")
    assert f"{received.numerator} / {received.denominator}" in text

    xlsx = browser.get("/reports/xlsx?from=2026-11-03&to=2026-11-14")
    assert xlsx.status_code == 200
    assert ('filename="communications-log-2026-11-03-to-2026-11-14.xlsx"'
            in xlsx.headers["content-disposition"])
    book = load_workbook(io.BytesIO(xlsx.content))
    log = book["Communications log"]
    with seeded.state.sessions() as session:
        counted = period_figures(session, seeded.state.web.config, date(2026, 11, 3),
                                 date(2026, 11, 14))
        events = session.execute(select(AuditEvent).where(AuditEvent.action.in_(
            ("report_downloaded", "log_exported"))).order_by(AuditEvent.id)).scalars().all()
    assert log.max_row - 1 == counted.figure("contacts_received").numerator
    assert [(e.action, e.actor, e.detail) for e in events] == [
        ("report_downloaded", "Manager Jones", {"from": "2026-11-01", "to": "2026-11-30"}),
        ("log_exported", "Manager Jones", {"from": "2026-11-03", "to": "2026-11-14"}),
    ]
    audit = browser.get("/audit").text
    assert "log exported: 2026-11-03 to 2026-11-14" in audit
