"""The monthly report for the safety meeting: decides how one month's figures (or a date
range's) are shown, as an HTML page with charts and a table for every chart, that opens
from disk, and as the same page printed to PDF by WeasyPrint. The console's reports page
shows the same `report_context`.

Charts are drawn as plain SVG here rather than with a plotting library: four bar charts
need no numpy or matplotlib on a prison's server, SVG text stays sharp when printed and
can be read by a screen reader, and the same input always gives the same bytes. Each
chart is written beside the page as its own `.svg` file (for slides) and also inlined in
the page, so the HTML alone is the whole report. Every chart has a table with its
numbers next to it: the table, not the picture, is the record.

The page is rendered by Jinja2 from `templates/report/report.html.j2` with autoescaping
on: wing names and references come from families' forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import utcnow
from mailbot.replies.render import SHIPPED_TEMPLATES, format_london_time
from mailbot.reports.figures import (
    UNCATEGORISED,
    UNKNOWN,
    Figure,
    MonthFigures,
    day_range,
    figures_by_month_within,
    figures_for_months,
    next_month,
    period_figures,
)

REPORT_TEMPLATES = SHIPPED_TEMPLATES / "report"
TEMPLATE = "report.html.j2"
TREND_MONTHS = 6

# GOV.UK Design System colours: familiar to HMPPS staff, and readable in greyscale print.
BLUE, DARK_BLUE, LIGHT_BLUE = "#1d70b8", "#003078", "#5694ca"
GREEN, ORANGE, RED, GREY, TEXT = "#00703c", "#f47738", "#d4351c", "#b1b4b6", "#0b0c0c"
BAND_COLOURS = (GREEN, GREEN, LIGHT_BLUE, RED, GREY, RED)  # in figures.response_bands order
FONT = "Arial, Helvetica, sans-serif"
# Not strftime's %B: month names must not depend on the server's locale.
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")

# The words the portal form and the toolkit use, for the category names triage stores.
CATEGORY_LABELS = {
    "suicide_self_harm": "Self-harm or suicide",
    "mental_health": "Mental health",
    "physical_health_medication": "Physical health or medication",
    "bullying_violence_threats": "Bullying, threats or violence",
    "debt": "Debt",
    "drugs_alcohol": "Drugs or alcohol",
    "bereavement": "Bereavement",
    "new_to_custody": "New to custody",
    "loss_of_contact": "Lack of contact",
    "staff_conduct": "Staff conduct",
    "visits": "Visits",
    "property": "Property",
    "money": "Money",
    "phone_pin": "Phone or PIN",
    "letters": "Letters",
    "release_transfer": "Release or transfer",
    "complaint": "Complaint",
    "other": "Something else",
    UNCATEGORISED: "Not categorised",
}
DEPARTMENT_LABELS = {
    "healthcare": "Healthcare",
    "mental_health": "Mental health team",
    "chaplaincy": "Chaplaincy",
    "family_services": "Family services",
    "security": "Security",
    "omu": "Offender management unit (OMU)",
    "substance_misuse": "Substance misuse service",
    UNKNOWN: "Not recorded",
}
URGENCY_LABELS = {
    "immediate": "Immediate",
    "urgent": "Urgent",
    "routine": "Routine",
    "not_safer_custody": "Not safer custody",
}


@dataclass(frozen=True)
class Chart:
    name: str  # file name stem: report-2026-11-by-type
    title: str
    svg: str

    @property
    def filename(self) -> str:
        return f"{self.name}.svg"


def report_figures(
    session: Session, config: Config, first: date, last: date | None = None,
    now: datetime | None = None,
) -> tuple[MonthFigures, list[MonthFigures]]:
    """What a report shows: the figures it is about, and the months beside them (oldest
    first). A month (`last` None, or a range that is one whole month) comes with the
    five before it; a date range is counted as a whole, then month by month within it."""
    now = now or utcnow()
    if last is not None and first.day == 1 and last == next_month(first) - timedelta(days=1):
        last = None
    if last is None:
        month = first.replace(day=1)
        trend = figures_for_months(session, config, _months_back(month, TREND_MONTHS - 1),
                                   month, now)
        return trend[-1], trend
    return (period_figures(session, config, first, last, now),
            figures_by_month_within(session, config, first, last, now))


def write_report(
    session: Session, config: Config, month: date, output_dir: Path,
    now: datetime | None = None,
) -> Path:
    """Write DIR/report-YYYY-MM.html and its chart files; return the HTML's path."""
    return write_reports(session, config, month, output_dir, now)[0]


def write_reports(
    session: Session, config: Config, first: date, output_dir: Path,
    now: datetime | None = None, *, last: date | None = None,
    formats: tuple[str, ...] = ("html",),
) -> list[Path]:
    """Write the report for the month of `first` (or the days `first` to `last`) into
    DIR as `report-YYYY-MM.html` with its chart files and/or `report-YYYY-MM.pdf`, in
    the order of `formats`; return the paths written."""
    now = now or utcnow()
    this, trend = report_figures(session, config, first, last, now)
    html, charts = render_report(config, trend, now, this)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in formats:
        path = output_dir / f"{report_stem(this)}.{kind}"
        if kind == "html":
            for chart in charts:
                (output_dir / chart.filename).write_text(chart.svg, encoding="utf-8")
            path.write_text(html, encoding="utf-8")
        elif kind == "pdf":
            path.write_bytes(pdf_from_html(html))
        else:
            raise ValueError(f"no report format {kind!r}: html or pdf")
        written.append(path)
    return written


def pdf_from_html(html: str) -> bytes:
    """The report page as an A4 PDF (WeasyPrint, its print styles). The page holds
    everything it shows, so nothing is fetched: any URL in it is refused."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # Tagged: headings, tables and their header cells survive for a screen reader.
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=())).write_pdf(
        pdf_tags=True)


def report_stem(this: MonthFigures) -> str:
    if this.until is None:
        return f"report-{this.month:%Y-%m}"
    return f"report-{this.month:%Y-%m-%d}-to-{this.until:%Y-%m-%d}"


def period_name(this: MonthFigures) -> str:
    return period_words(this.month, this.until)


def period_words(first: date, last: date | None = None) -> str:
    """"November 2026" for a month (`last` None, or its last day), "3 November 2026 to
    14 December 2026" for a range."""
    if last is None or (first.day == 1 and last == next_month(first) - timedelta(days=1)):
        return month_name(first)
    if first == last:
        return _day(first)
    return f"{_day(first)} to {_day(last)}"


def render_report(
    config: Config, trend: list[MonthFigures], now: datetime,
    this: MonthFigures | None = None,
) -> tuple[str, list[Chart]]:
    """Pure: the page and its charts for `this` (default: the last month of `trend`,
    oldest first)."""
    context, charts = report_context(config, trend, now, this)
    environment = Environment(
        loader=FileSystemLoader(REPORT_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        percent=percent_text, category=category_label, department=department_label,
        urgency=urgency_label,
    )
    return environment.get_template(TEMPLATE).render(**context), charts


def report_context(
    config: Config, trend: list[MonthFigures], now: datetime,
    this: MonthFigures | None = None,
) -> tuple[dict[str, Any], list[Chart]]:
    """Pure: what the report page shows (the file's template and the console's read the
    same), and its charts."""
    this = this or trend[-1]
    stem = report_stem(this)
    is_month = this.until is None
    span = "this month" if is_month else "in this period"
    tables = this.tables
    charts = [
        Chart(f"{stem}-by-type", "Contacts by type of concern",
              bar_chart([(category_label(k), n) for k, n in tables["by_type"]], BLUE,
                        "Contacts by type of concern", empty=f"No contacts {span}")),
        Chart(f"{stem}-by-wing", "Contacts by wing",
              bar_chart(tables["by_wing"], DARK_BLUE, "Contacts by wing",
                        empty=f"No contacts {span}")),
        Chart(f"{stem}-response-times", "Time to respond (safer custody contacts)",
              bar_chart(tables["response_times"], list(BAND_COLOURS),
                        "Time to respond to safer custody contacts",
                        empty=f"No contacts {span}")),
        Chart(f"{stem}-trend",
              f"Contacts received, last {len(trend)} months" if is_month
              else "Contacts received, month by month",
              trend_chart([(_trend_label(m),
                            m.figure("responded").denominator,
                            m.figure("not_safer_custody").numerator) for m in trend])),
    ]
    start, end = day_range(this.month, this.last_day, config.office_hours.timezone)
    context = dict(
        prison=config.prison.name,
        month=this,
        month_name=period_name(this),
        is_month=is_month,
        this_period=span,
        period=f"{_day(start)} to {_day(end - timedelta(days=1))}",
        timezone=config.office_hours.timezone,
        produced=format_london_time(now),
        office_hours=config.office_hours,
        deadline_hours=config.deadlines.respond_within_hours,
        persistent={"threshold": config.deadlines.persistent_threshold,
                    "window_days": config.deadlines.persistent_window_days},
        headline=this.figures,
        charts={chart.name.removeprefix(f"{stem}-"): _inline(chart) for chart in charts},
        trend=[_trend_row(m) for m in reversed(trend)],
    )
    return context, charts


def percent_text(figure: Figure) -> str:
    value = figure.percent
    if value is None:
        return "–"
    if 0 < value < 1:
        return "<1%"
    return f"{value:.0f}%"


def category_label(name: str) -> str:
    return CATEGORY_LABELS.get(name, name.replace("_", " ").capitalize())


def department_label(name: str) -> str:
    return DEPARTMENT_LABELS.get(name, name.replace("_", " ").capitalize())


def urgency_label(name: str) -> str:
    return URGENCY_LABELS.get(name, name.replace("_", " ").capitalize())


# --- Charts: plain SVG ---

def bar_chart(
    rows: list[tuple[str, int]], colour: str | list[str], description: str,
    width: int = 560, empty: str = "No contacts this month",
) -> str:
    """Horizontal bars, one per row, labelled and with the count at the bar's end."""
    label_width, row_height, top = 230, 28, 10
    bar_x = label_width + 10
    longest = width - bar_x - 50
    most = max((n for _, n in rows), default=0)
    height = top * 2 + max(len(rows), 1) * row_height
    parts = [_svg_open(width, height, description)]
    if not rows or most == 0:
        parts.append(f'<text x="{width / 2}" y="{height / 2 + 5}" text-anchor="middle" '
                     f'fill="{TEXT}">{escape(empty)}</text>')
    for index, (label, count) in enumerate(rows):
        y = top + index * row_height
        fill = colour[index % len(colour)] if isinstance(colour, list) else colour
        bar = round(longest * count / most, 1) if most else 0
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<g><title>{escape(label)}: {count}</title>'
            f'<text x="{label_width}" y="{y + 18}" text-anchor="end" fill="{TEXT}">'
            f"{escape(short)}</text>"
            f'<rect x="{bar_x}" y="{y + 4}" width="{max(bar, 1 if count else 0)}" '
            f'height="20" fill="{fill}"/>'
            f'<text x="{bar_x + bar + 6}" y="{y + 18}" fill="{TEXT}" font-weight="bold">'
            f"{count}</text></g>"
        )
    parts.append("</svg>\n")
    return "".join(parts)


def trend_chart(months: list[tuple[str, int, int]], width: int = 560, height: int = 260) -> str:
    """Stacked columns per month: safer custody contacts, and the rest, with the total."""
    left, right, top, bottom = 44, 12, 34, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    most = max((s + o for _, s, o in months), default=0)
    step = _nice_step(most)
    ceiling = max(step * -(-most // step), step)
    parts = [_svg_open(width, height, "Contacts received each month: safer custody "
                                      "contacts and other contacts")]
    parts.append(
        f'<rect x="{left}" y="6" width="12" height="12" fill="{BLUE}"/>'
        f'<text x="{left + 18}" y="16" fill="{TEXT}">Safer custody</text>'
        f'<rect x="{left + 130}" y="6" width="12" height="12" fill="{GREY}"/>'
        f'<text x="{left + 148}" y="16" fill="{TEXT}">Not for the safer custody route</text>'
    )
    for tick in range(0, ceiling + 1, step):
        y = top + plot_h - plot_h * tick / ceiling
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#dddddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{tick}</text>"
        )
    slot = plot_w / max(len(months), 1)
    column = min(56.0, slot * 0.6)
    for index, (label, safer, other) in enumerate(months):
        x = left + slot * index + (slot - column) / 2
        safer_h, other_h = plot_h * safer / ceiling, plot_h * other / ceiling
        base = top + plot_h
        parts.append(
            f"<g><title>{escape(label)}: {safer} safer custody, {other} other</title>"
            f'<rect x="{x:.1f}" y="{base - safer_h:.1f}" width="{column:.1f}" '
            f'height="{safer_h:.1f}" fill="{BLUE}"/>'
            f'<rect x="{x:.1f}" y="{base - safer_h - other_h:.1f}" width="{column:.1f}" '
            f'height="{other_h:.1f}" fill="{GREY}"/>'
            f'<text x="{x + column / 2:.1f}" y="{base - safer_h - other_h - 5:.1f}" '
            f'text-anchor="middle" font-weight="bold" fill="{TEXT}">{safer + other}</text>'
            f'<text x="{x + column / 2:.1f}" y="{base + 18}" text-anchor="middle" '
            f'fill="{TEXT}">{escape(label)}</text></g>'
        )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
                 f'y2="{top + plot_h}" stroke="{TEXT}"/>')
    parts.append("</svg>\n")
    return "".join(parts)


def _svg_open(width: int, height: int, description: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="{FONT}" font-size="14">'
        f"<title>{escape(description)}</title>"
    )


def _nice_step(most: int) -> int:
    """A round gridline step (1, 2, 5, 10, 20, 50...) giving about four lines."""
    rough = max(most / 4, 1)
    magnitude = 1
    while magnitude * 10 <= rough:
        magnitude *= 10
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= rough:
            return multiple * magnitude
    return 10 * magnitude


def _inline(chart: Chart) -> dict[str, object]:
    # Our own SVG, whose every label went through escape() above.
    body = chart.svg.replace('<svg xmlns="http://www.w3.org/2000/svg" ', "<svg ", 1)
    return {"title": chart.title, "filename": chart.filename, "svg": Markup(body)}


def _trend_row(m: MonthFigures) -> dict[str, object]:
    return {
        "month": _trend_label(m),
        "received": m.figure("contacts_received").numerator,
        "safer": m.figure("responded").denominator,
        "within": m.figure("answered_within_deadline"),
        "self_harm": m.figure("self_harm_risk"),
        "violence": m.figure("violence_risk"),
        "out_of_hours": m.figure("out_of_hours"),
        "breaches": len(m.breaches),
    }


def _months_back(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def month_name(month: date) -> str:
    return f"{MONTH_NAMES[month.month - 1]} {month.year}"


def _trend_label(m: MonthFigures) -> str:
    """A trend row's name: "Nov 2026", or "3–14 Nov 2026" for part of a month."""
    whole = m.until is None or (m.month.day == 1
                                and m.until == next_month(m.month) - timedelta(days=1))
    if whole:
        return _month_short(m.month)
    first = f"{m.month.day}" if m.month.day != m.until.day else ""
    return f"{first}{'–' if first else ''}{m.until.day} {_month_short(m.month)}"


def _month_short(month: date) -> str:
    return f"{MONTH_NAMES[month.month - 1][:3]} {month.year}"


def _day(moment: date) -> str:
    day = moment.date() if isinstance(moment, datetime) else moment
    return f"{day.day} {month_name(day)}"
