"""`mailbot export` (the communications log as JSON, CSV or xlsx) and `mailbot report`
(the monthly report for the safety meeting, as HTML and PDF)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from mailbot.cli.context import Context, pass_context


def _date(_ctx: click.Context, _param: click.Parameter, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a date like 2026-11-24") from exc


def _month(_ctx: click.Context, _param: click.Parameter, text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a month like 2026-11") from exc


def _optional_month(ctx: click.Context, param: click.Parameter, text: str | None
                    ) -> date | None:
    return None if text is None else _month(ctx, param, text)


@click.command("export")
@click.option("--format", "output_format", type=click.Choice(("json", "csv", "xlsx")),
              default="json", show_default=True)
@click.option("--output", type=click.Path(path_type=Path),
              help="write to this file instead of stdout")
@click.option("--from", "start", callback=_date, metavar="YYYY-MM-DD", help="xlsx: first day")
@click.option("--to", "end", callback=_date, metavar="YYYY-MM-DD", help="xlsx: last day")
@pass_context
def export_command(context: Context, output_format: str, output: Path | None,
                   start: date | None, end: date | None) -> int:
    """print the communications log"""
    return _export(context, output_format, output, start, end)


@click.command("report")
@click.option("--month", callback=_optional_month, metavar="YYYY-MM",
              help="the month to report on")
@click.option("--from", "start", callback=_date, metavar="YYYY-MM-DD",
              help="instead of --month: the first day of a date range")
@click.option("--to", "end", callback=_date, metavar="YYYY-MM-DD",
              help="with --from: the range's last day (included)")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="directory to write to")
@click.option("--format", "output_format", type=click.Choice(("html", "pdf", "both")),
              default="html", show_default=True,
              help="the HTML page (with its charts as SVG files), the same page as PDF, "
                   "or both")
@click.option("--email", is_flag=True,
              help="also email it to [alerts] safety_team, the PDF and HTML attached")
@pass_context
def report_command(context: Context, month: date | None, start: date | None,
                   end: date | None, output: Path, output_format: str, email: bool) -> int:
    """the monthly report for the safety meeting (or a date range's)"""
    from mailbot.reports.report import period_words, write_reports

    if (month is None) == (start is None) or (start is None) != (end is None):
        print("mailbot: report needs --month, or --from and --to", file=sys.stderr)
        return 2
    if start is not None and end is not None and end < start:
        print(f"mailbot: the range ends ({end}) before it starts ({start})", file=sys.stderr)
        return 2
    formats = {"html": ("html",), "pdf": ("pdf",), "both": ("html", "pdf")}[output_format]
    if email:  # the safety team gets both: the PDF to print, the HTML for a screen reader
        formats = ("html", "pdf")
    with context.sessions() as session:
        paths = write_reports(session, context.config, month or start, output,
                              last=end, formats=formats)
    for path in paths:
        print(f"wrote {path}")
    return _email_report(context, paths, period_words(month or start, end)) if email else 0


COMMANDS = (export_command, report_command)


def _email_report(context: Context, paths: list[Path], title: str) -> int:
    """The report, attached to one email to each of the safety team, sent now (or
    queued for the daemon to retry, if SMTP is down): the PDF first (it prints as it
    looks and opens on a phone), then the HTML page (it reflows, and a screen reader
    reads its tables)."""
    from mailbot.mailbox.fetch import Mailbox
    from mailbot.replies.outbox import Kind, enqueue, send_due

    config, sessions = context.config, context.sessions
    recipients = config.alerts.safety_team
    if not recipients:
        print("mailbot: --email needs [alerts] safety_team", file=sys.stderr)
        return 2
    html = next(p for p in paths if p.suffix == ".html")
    pdf = next(p for p in paths if p.suffix == ".pdf")
    with sessions() as session:
        for recipient in recipients:
            enqueue(session, config, kind=Kind.MONTHLY_REPORT, to=recipient,
                    subject=f"Safer custody report for {title}",
                    text=f"The safer custody report for {title} is attached twice: as a "
                         f"PDF ({pdf.name}) to print or read anywhere, and as a web page "
                         f"({html.name}) that opens in any web browser.\n",
                    attachments=[(pdf.name, pdf.read_bytes()),
                                 (html.name, html.read_bytes())],
                    auto_submitted="auto-generated")
        session.commit()
    summary = send_due(config, sessions, lambda: Mailbox.connect(config.mailbox))
    state = "sent" if summary.sent else "queued (will be retried)"
    print(f"emailed to {len(recipients)} address(es): {state}")
    return 0


def _export(context: Context, output_format: str, output: Path | None, start: date | None,
            end: date | None) -> int:
    from mailbot.reports.export import log_entries, to_csv, to_json

    if output_format == "xlsx":
        from mailbot.reports.spreadsheet import write_xlsx

        if not (start and end and output):
            print("mailbot: --format xlsx needs --from, --to and --output", file=sys.stderr)
            return 2
        with context.sessions() as session:
            path = write_xlsx(session, context.config, start, end, output)
        print(f"wrote {path}")
        return 0

    with context.sessions() as session:
        entries = log_entries(session, context.config)
    text = to_json(entries) if output_format == "json" else to_csv(entries)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
