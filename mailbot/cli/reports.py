"""`mailbot export` (the communications log as JSON, CSV or xlsx) and `mailbot report`
(the monthly HTML report for the safety meeting)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from mailbot.cli.context import Context

COMMANDS = ("export", "report")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser("export", help="print the communications log")
    export.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    export.add_argument("--from", dest="start", type=_date, help="xlsx: first day, YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=_date, help="xlsx: last day, YYYY-MM-DD")

    report = verbs.add_parser("report", help="the monthly report for the safety meeting")
    report.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    report.add_argument("--output", required=True, type=Path, help="directory to write to")
    report.add_argument("--email", action="store_true",
                        help="also email it to [alerts] safety_team, attached")


def dispatch(context: Context, args: argparse.Namespace) -> int:
    if args.verb == "report":
        from mailbot.reports.report import write_report

        with context.sessions() as session:
            path = write_report(session, context.config, args.month, args.output)
        print(f"wrote {path}")
        return _email_report(context, path, args.month) if args.email else 0
    return _export(context, args)


def _email_report(context: Context, path: Path, month: date) -> int:
    """The report, attached to one email to each of the safety team, sent now (or
    queued for the daemon to retry, if SMTP is down)."""
    from mailbot.mailbox.fetch import Mailbox
    from mailbot.replies.outbox import Kind, enqueue, send_due

    config, sessions = context.config, context.sessions
    recipients = config.alerts.safety_team
    if not recipients:
        print("mailbot: --email needs [alerts] safety_team", file=sys.stderr)
        return 2
    with sessions() as session:
        for recipient in recipients:
            enqueue(session, config, kind=Kind.MONTHLY_REPORT, to=recipient,
                    subject=f"Safer custody report for {month:%B %Y}",
                    text=f"The safer custody report for {month:%B %Y} is attached "
                         f"({path.name}); it opens in any web browser.\n",
                    attachments=[(path.name, path.read_bytes())],
                    auto_submitted="auto-generated")
        session.commit()
    summary = send_due(config, sessions, lambda: Mailbox.connect(config.mailbox))
    state = "sent" if summary.sent else "queued (will be retried)"
    print(f"emailed to {len(recipients)} address(es): {state}")
    return 0


def _export(context: Context, args: argparse.Namespace) -> int:
    from mailbot.reports.export import log_entries, to_csv, to_json

    if args.format == "xlsx":
        from mailbot.reports.spreadsheet import write_xlsx

        if not (args.start and args.end and args.output):
            print("mailbot: --format xlsx needs --from, --to and --output", file=sys.stderr)
            return 2
        with context.sessions() as session:
            path = write_xlsx(session, context.config, args.start, args.end, args.output)
        print(f"wrote {path}")
        return 0

    with context.sessions() as session:
        entries = log_entries(session, context.config)
    text = to_json(entries) if args.format == "json" else to_csv(entries)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-24") from exc


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2026-11") from exc
