"""The monthly report: one HTML page that opens from disk, with every headline figure as
numerator / denominator and percent, a chart file beside it for each chart, and the
family's words escaped; and, where Chromium is installed, a look at it as a person would."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date
from html import escape
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot import db
from mailbot.config import Config
from mailbot.db.models import Contact
from mailbot.reports.figures import monthly_figures
from mailbot.reports.report import bar_chart, percent_text, trend_chart, write_report
from tests.seed import SEED_NOW, seed_log

REPO = Path(__file__).resolve().parent.parent
NOVEMBER = date(2026, 11, 1)
CHARTS = ("by-type", "by-wing", "response-times", "trend")


@pytest.fixture
def session(sqlite_url: str, offline_config: Config) -> Iterator[Session]:
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        seed_log(session, offline_config)
        session.commit()
        yield session
    engine.dispose()


def test_report_shows_every_headline_figure_with_numerator_denominator_and_percent(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    path = write_report(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW)
    assert path == tmp_path / "report-2026-11.html"
    html = path.read_text(encoding="utf-8")
    figures = monthly_figures(session, offline_config, NOVEMBER, now=SEED_NOW)
    assert len(figures.figures) == 12
    for figure in figures.figures:
        row = html[html.index(f'id="figure-{figure.key}"'):]
        row = row[: row.index("</tr>")]
        assert escape(figure.label, quote=False) in row
        assert f"{figure.numerator} / {figure.denominator}" in row
        assert percent_text(figure) in row
        assert figure.basis in row
    assert "Contacts from families: November 2026" in html
    assert "1 November 2026 to 30 November 2026" in html


def test_report_has_a_table_for_every_chart_and_lists_the_breaches(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    html = write_report(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW).read_text()
    figures = monthly_figures(session, offline_config, NOVEMBER, now=SEED_NOW)
    for reference in figures.breaches:
        assert f"<li>{reference}</li>" in html
    for references, count in figures.tables["repeat_contacts"]:
        assert f'<tr><td>{references}</td><td class="num">{count}</td></tr>' in html
    for heading in ("Contacts by type of concern", "Contacts by wing",
                    "Responding to safer custody contacts",
                    "Not appropriate for the safer custody route", "Referrals",
                    "Repeat and persistent contacts", "The last 6 months",
                    "How these figures are counted"):
        assert heading in html
    for month in ("Jun 2026", "Jul 2026", "Aug 2026", "Sep 2026", "Oct 2026", "Nov 2026"):
        assert month in html


def test_report_says_anonymised_contacts_are_counted(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    html = write_report(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW).read_text()
    figures = monthly_figures(session, offline_config, NOVEMBER, now=SEED_NOW)
    assert figures.anonymised > 0
    assert "Anonymised contacts are counted." in html
    assert f"({figures.anonymised} this month)" in html


def test_chart_files_exist_are_svg_and_are_also_inline(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    html = write_report(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW).read_text()
    for name in CHARTS:
        chart = tmp_path / f"report-2026-11-{name}.svg"
        assert chart.stat().st_size > 500, chart
        root = ET.parse(chart).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find(".//{http://www.w3.org/2000/svg}rect") is not None, "bars drawn"
        assert f'href="{chart.name}"' in html
    assert html.count("<svg ") == len(CHARTS)


def test_report_opens_from_disk_with_nothing_fetched(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    html = write_report(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW).read_text()
    assert "<script" not in html
    assert "<link" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_a_wing_name_from_a_form_is_escaped_in_page_and_chart(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    contact = session.execute(
        select(Contact).where(Contact.received_at >= SEED_NOW.replace(month=11, day=2))
        .order_by(Contact.id).limit(1)
    ).scalar_one()
    contact.location = '<img src=x onerror="alert(1)"> & wing'
    session.commit()
    write_report(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW)
    html = (tmp_path / "report-2026-11.html").read_text()
    chart = (tmp_path / "report-2026-11-by-wing.svg").read_text()
    assert "<img" not in html and "<img" not in chart
    assert "&lt;img src=x onerror=" in html
    assert "&lt;img src=x onerror=" in chart
    ET.fromstring(chart)  # still well-formed XML


def test_a_month_with_no_contacts_still_makes_a_report(
    session: Session, offline_config: Config, tmp_path: Path
) -> None:
    path = write_report(session, offline_config, date(2027, 3, 1), tmp_path, now=SEED_NOW)
    html = path.read_text()
    assert "0 / 0" in html
    assert "No contacts this month" in (tmp_path / "report-2027-03-by-type.svg").read_text()
    assert "None this month." in html


def test_bar_chart_scales_to_the_largest_row_and_shows_each_count() -> None:
    svg = bar_chart([("A wing", 10), ("B wing", 5), ("C wing", 0)], "#000000", "Wings")
    root = ET.fromstring(svg)
    widths = [float(r.get("width", 0)) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["A wing", "10", "B wing", "5", "C wing", "0"]


def test_trend_chart_labels_each_month_with_its_total() -> None:
    svg = trend_chart([("Oct 2026", 30, 9), ("Nov 2026", 51, 7)])
    texts = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert {"Oct 2026", "Nov 2026", "39", "58"} <= set(texts)


# --- Looking at it as a person would: headless Chromium, which scripts/test installs. ---


def test_render_report_screenshot_makes_a_png(tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_report_screenshot"),
         "--output", str(shot), "--height", "1200"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a page with text and charts, not a blank one
