"""The console's Reports page (manager): the monthly report for any month, or for a date
range, as the page, as the PDF `mailbot report --format pdf` writes and as the xlsx log
`mailbot export --format xlsx` writes. The figures, the charts and the PDF are
mailbot/reports/'s, the same calls the command line makes; nothing here counts.

A download of the xlsx log (names, addresses and what families wrote) or of the PDF is
recorded in the audit trail under the manager's name."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailbot.casework.audit import record_event
from mailbot.db.models import User, utcnow
from mailbot.reports import report as reports
from mailbot.reports.figures import first_of_month, next_month
from mailbot.web.app import Web, page

MONTHS_OFFERED = 24
MAX_DAYS = 731  # two years: each month within a range is counted again for its row
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Period:
    """What a report is asked for: a month (`last` None) or the days `first` to `last`."""

    first: date
    last: date | None

    @property
    def query(self) -> str:
        if self.last is None:
            return f"month={self.first:%Y-%m}"
        return f"from={self.first.isoformat()}&to={self.last.isoformat()}"

    @property
    def days(self) -> tuple[date, date]:
        return self.first, self.last or next_month(self.first) - timedelta(days=1)


def _today(web: Web) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(web.config.office_hours.timezone)).date()


def _period(request: Request, web: Web) -> Period:
    """The period the query asks for (default: last month); ValueError with the reason."""
    params = request.query_params
    start, end = _typed(params, "from"), _typed(params, "to")
    if start or end:
        try:
            first = date.fromisoformat(start)
        except ValueError:
            raise ValueError("Enter the range's first day as a real date, for example "
                             "3 11 2026") from None
        try:
            last = date.fromisoformat(end)
        except ValueError:
            raise ValueError("Enter the range's last day as a real date, for example "
                             "14 11 2026") from None
        if last < first:
            raise ValueError(f"The range ends ({last:%d/%m/%Y}) before it starts "
                             f"({first:%d/%m/%Y})")
        if (last - first).days >= MAX_DAYS:
            raise ValueError(f"A range can be up to {MAX_DAYS} days long: for longer, "
                             "use mailbot report --from --to")
        if first.day == 1 and last == next_month(first) - timedelta(days=1):
            return Period(first, None)  # a whole month is the month's report
        return Period(first, last)
    month = params.get("month", "").strip()
    if month:
        try:
            return Period(date.fromisoformat(f"{month}-01"), None)
        except ValueError:
            raise ValueError(f"'{month[:20]}' is not a month like 2026-11") from None
    return Period(first_of_month(first_of_month(_today(web)) - timedelta(days=1)), None)


def _typed(params: Any, end: str) -> str:
    """One end of the range as YYYY-MM-DD: from the form's day, month and year boxes
    (GOV.UK's date input), or as a link gives it (from=2026-11-03); "" if not given."""
    parts = [params.get(f"{end}-{part}", "").strip() for part in ("day", "month", "year")]
    if any(parts):
        day, month, year = parts
        if not (day.isdigit() and month.isdigit() and year.isdigit() and len(year) == 4):
            return "not a date"
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return params.get(end, "").strip()


def _months(web: Web) -> list[tuple[str, str]]:
    month, offered = first_of_month(_today(web)), []
    for _ in range(MONTHS_OFFERED):
        offered.append((f"{month:%Y-%m}", reports.month_name(month)))
        month = first_of_month(month - timedelta(days=1))
    return offered


def _figures(web: Web, period: Period) -> tuple[dict[str, Any], str]:
    """The report's context (the one `mailbot report` renders) and its file name stem."""
    now = utcnow()
    with web.sessions() as session:
        this, trend = reports.report_figures(session, web.config, period.first, period.last,
                                             now)
    context, _charts = reports.report_context(web.config, trend, now, this)
    return context, reports.report_stem(this)


def _audit(web: Web, user: User, action: str, period: Period) -> None:
    first, last = period.days
    with web.sessions() as session:
        record_event(session, actor=user.name, action=action,
                     detail={"from": first.isoformat(), "to": last.isoformat()})
        session.commit()


@page("manager")
async def reports_page(request: Request, web: Web, user: User) -> Response:
    months = _months(web)
    try:
        period = _period(request, web)
    except ValueError as exc:
        return web.render(request, "reports.html", 400, error=str(exc), months=months,
                          period=None, report=None, chosen=dict(request.query_params))
    context, _stem = await run_in_threadpool(_figures, web, period)
    first, last = period.days
    chosen = {"month": f"{period.first:%Y-%m}" if period.last is None else ""}
    for end, day in (("from", first), ("to", last)):
        chosen.update({f"{end}-day": str(day.day), f"{end}-month": str(day.month),
                       f"{end}-year": str(day.year)})
    return web.render(
        request, "reports.html", months=months, period=period, report=context,
        chosen=chosen,
        percent=reports.percent_text, category=reports.category_label,
        department=reports.department_label, urgency=reports.urgency_label)


@page("manager")
async def report_pdf(request: Request, web: Web, user: User) -> Response:
    try:
        period = _period(request, web)
    except ValueError as exc:
        return Response(str(exc), 400, media_type="text/plain")

    def make() -> tuple[bytes, str]:
        now = utcnow()
        with web.sessions() as session:
            this, trend = reports.report_figures(session, web.config, period.first,
                                                 period.last, now)
        html, _charts = reports.render_report(web.config, trend, now, this)
        _audit(web, user, "report_downloaded", period)
        return reports.pdf_from_html(html), f"{reports.report_stem(this)}.pdf"

    pdf, filename = await run_in_threadpool(make)
    return Response(pdf, media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


@page("manager")
async def report_xlsx(request: Request, web: Web, user: User) -> Response:
    from mailbot.reports.spreadsheet import write_xlsx

    try:
        period = _period(request, web)
    except ValueError as exc:
        return Response(str(exc), 400, media_type="text/plain")
    first, last = period.days

    def make() -> bytes:
        with tempfile.TemporaryDirectory(prefix="mailbot-xlsx-") as directory, \
                web.sessions() as session:
            path = write_xlsx(session, web.config, first, last, Path(directory) / "log.xlsx")
            data = path.read_bytes()
        _audit(web, user, "log_exported", period)
        return data

    data = await run_in_threadpool(make)
    filename = f"communications-log-{first.isoformat()}-to-{last.isoformat()}.xlsx"
    return Response(data, media_type=XLSX,
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


ROUTES = (
    ("/reports", reports_page, ["GET"]),
    ("/reports/pdf", report_pdf, ["GET"]),
    ("/reports/xlsx", report_xlsx, ["GET"]),
)
