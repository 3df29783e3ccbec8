"""The report as PDF: WeasyPrint prints the same HTML page `mailbot report` writes, so the
PDF holds the month's figures as text (read back with pypdf), on A4 pages; `report
--format pdf` writes it, `--format both` writes it beside the page, and a date range is
counted as the console counts it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy.orm import Session

from mailbot import db
from mailbot.config import Config
from mailbot.reports.figures import monthly_figures, period_figures
from mailbot.reports.report import (
    pdf_from_html,
    percent_text,
    report_figures,
    write_reports,
)
from tests.seed import SEED_NOW, seed_log

NOVEMBER = date(2026, 11, 1)


@pytest.fixture
def session(sqlite_url: str, offline_config: Config) -> Iterator[Session]:
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with db.session_factory(engine)() as session:
        seed_log(session, offline_config)
        session.commit()
        yield session
    engine.dispose()


def pdf_text(data: bytes) -> str:
    """The PDF's text, one space between words, whatever the line breaks."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def test_the_pdf_holds_the_months_figures_as_text(session, offline_config, tmp_path):
    [path] = write_reports(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW,
                           formats=("pdf",))
    assert path == tmp_path / "report-2026-11.pdf"
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 2
    for page in reader.pages:  # A4, portrait
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(width), round(height)) == (595, 842)
    assert reader.metadata.title.startswith("Safer custody contacts: November 2026")
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/Lang"] == "en-GB"  # tagged, for a reader
    text = pdf_text(data)
    assert "Contacts from families: November 2026" in text
    assert "1 November 2026 to 30 November 2026" in text
    figures = monthly_figures(session, offline_config, NOVEMBER, now=SEED_NOW)
    for figure in figures.figures:
        # label (wrapped in its cell, so words in order), count / out of, percent
        words = r"\s*".join(re.escape(word) for word in figure.label.split())
        assert re.search(words, text), figure.label
        assert f"{figure.numerator} / {figure.denominator}" in text, figure.key
        assert percent_text(figure) in text
    for reference in figures.breaches:
        assert reference in text
    assert "Page 1 of" in text  # the print styles' page numbers


def test_format_both_writes_the_pdf_beside_the_page(session, offline_config, tmp_path):
    paths = write_reports(session, offline_config, NOVEMBER, tmp_path, now=SEED_NOW,
                          formats=("html", "pdf"))
    assert [p.name for p in paths] == ["report-2026-11.html", "report-2026-11.pdf"]
    assert (tmp_path / "report-2026-11-by-type.svg").is_file()


def test_a_date_range_is_counted_over_its_days(session, offline_config, tmp_path):
    first, last = date(2026, 11, 3), date(2026, 11, 14)
    [path] = write_reports(session, offline_config, first, tmp_path, now=SEED_NOW,
                           last=last, formats=("pdf",))
    assert path.name == "report-2026-11-03-to-2026-11-14.pdf"
    counted = period_figures(session, offline_config, first, last, now=SEED_NOW)
    whole = monthly_figures(session, offline_config, NOVEMBER, now=SEED_NOW)
    received = counted.figure("contacts_received").numerator
    assert 0 < received < whole.figure("contacts_received").numerator
    text = pdf_text(path.read_bytes())
    assert "Contacts from families: 3 November 2026 to 14 November 2026" in text
    assert f"{received} / {received}" in text
    assert "Month by month" in text


def test_a_range_that_is_a_whole_month_is_the_months_report(session, offline_config):
    this, trend = report_figures(session, offline_config, NOVEMBER, date(2026, 11, 30),
                                 SEED_NOW)
    assert this.until is None and len(trend) == 6
    assert this.figures == monthly_figures(session, offline_config, NOVEMBER,
                                           now=SEED_NOW).figures


def test_the_pdf_fetches_nothing():
    """A page asking for an image elsewhere gets a PDF without it, and no request goes
    out (the report holds everything it shows; a family's words are escaped anyway)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        data = pdf_from_html(f'<!DOCTYPE html><html><head><link rel="stylesheet" '
                             f'href="{url}/s.css"></head><body><p>hello</p>'
                             f'<img src="{url}/x.png" alt="x"></body></html>')
    finally:
        server.shutdown()
    assert data.startswith(b"%PDF-") and "hello" in pdf_text(data)
    assert asked == []


def test_report_format_pdf_on_the_command_line(session, offline_config, tmp_path: Path,
                                               monkeypatch):
    from mailbot.cli import reports as cli_reports

    class Stub:
        config = offline_config

        def sessions(self):  # type: ignore[no-untyped-def]
            return _Same(session)

    callback = cli_reports.report_command.callback.__wrapped__  # type: ignore[union-attr]
    monkeypatch.setattr("mailbot.reports.report.utcnow", lambda: SEED_NOW)
    assert callback(Stub(), NOVEMBER, None, None, tmp_path, "pdf", False) == 0
    assert (tmp_path / "report-2026-11.pdf").read_bytes().startswith(b"%PDF-")
    assert not (tmp_path / "report-2026-11.html").exists()
    assert callback(Stub(), None, date(2026, 11, 3), None, tmp_path, "pdf", False) == 2


class _Same:
    def __init__(self, session: Session) -> None:
        self.session = session

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, *exc: object) -> None:
        return None
