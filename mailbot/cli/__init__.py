"""The `mailbot` command line: stable verbs that scripts, systemd and staff rely on.

Every failure a person can fix (bad config, unreachable mailbox, refused login, database
down) ends as one clear line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from mailbot import __version__
from mailbot import config as config_module
from mailbot.errors import DatabaseError, MailbotError
from mailbot.logs import setup as setup_logging

log = logging.getLogger("mailbot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="Watches the safer custody functional mailbox and keeps its log.",
    )
    parser.add_argument("--config", help="TOML configuration file (default: $MAILBOT_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    run = verbs.add_parser("run", help="poll the mailbox (as a daemon, or --once)")
    run.add_argument("--once", action="store_true", help="process the inbox once and exit")

    export = verbs.add_parser("export", help="print the communications log")
    export.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    export.add_argument("--from", dest="start", type=_date, help="xlsx: first day, YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=_date, help="xlsx: last day, YYYY-MM-DD")

    report = verbs.add_parser("report", help="the monthly report for the safety meeting")
    report.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    report.add_argument("--output", required=True, type=Path, help="directory to write to")

    messages = verbs.add_parser("messages", help="every ingested message and where it went")
    messages_verbs = messages.add_subparsers(dest="messages_verb", required=True)
    listing = messages_verbs.add_parser("list", help="list ingested messages")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--disposition", help="only this disposition (e.g. quarantined)")
    show = messages_verbs.add_parser("show", help="one message, with its raw bytes")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="print the raw message only")
    replay = messages_verbs.add_parser(
        "replay", help="read a quarantined message again (after fixing the cause)"
    )
    replay.add_argument("id", type=int)
    replay.add_argument("--by", required=True)

    database = verbs.add_parser("db", help="database schema")
    database_verbs = database.add_subparsers(dest="db_verb", required=True)
    database_verbs.add_parser("upgrade", help="create or upgrade the schema")

    consent_cmd = verbs.add_parser("consent", help="the consent register")
    consent_verbs = consent_cmd.add_subparsers(dest="consent_verb", required=True)
    for name, text in (
        ("grant", "record what the prisoner consented to share with a contact"),
        ("withdraw", "withdraw consent (wins from this moment)"),
        ("restrict", "record a restricted contact (restraining order, ...)"),
    ):
        verb = consent_verbs.add_parser(name, help=text)
        verb.add_argument("--prisoner", required=True, help="prisoner number, A1234BC")
        verb.add_argument(
            "--contact", required=True, help="email address, or 'Name|phone' without one"
        )
        verb.add_argument("--by", required=True, help="member of staff recording it")
        verb.add_argument("--note", default="")
        if name == "grant":
            verb.add_argument("--scope", required=True, choices=("none", "wellbeing", "full"))
    consent_list = consent_verbs.add_parser("list", help="list the register")
    consent_list.add_argument("--prisoner")
    consent_list.add_argument("--json", action="store_true")

    drafts_cmd = verbs.add_parser("drafts", help="acknowledgements waiting for approval")
    drafts_verbs = drafts_cmd.add_subparsers(dest="drafts_verb", required=True)
    drafts_list = drafts_verbs.add_parser("list", help="open drafts")
    drafts_list.add_argument("--json", action="store_true")
    drafts_list.add_argument("--all", action="store_true", help="decided ones too")
    drafts_show = drafts_verbs.add_parser("show", help="one draft in full")
    drafts_show.add_argument("id", type=int)
    approve = drafts_verbs.add_parser("approve", help="approve and send a draft")
    approve.add_argument("id", type=int)
    approve.add_argument("--by", required=True)
    approve.add_argument("--edit", type=Path, help="send this file's text instead")
    reject = drafts_verbs.add_parser("reject", help="reject a draft")
    reject.add_argument("id", type=int)
    reject.add_argument("--by", required=True)
    reject.add_argument("--reason", required=True)
    redraft = drafts_verbs.add_parser("redraft", help="rewrite a draft for today's consent")
    redraft.add_argument("id", type=int)
    redraft.add_argument("--by", required=True)

    templates_cmd = verbs.add_parser("templates", help="reply templates admins edit")
    templates_verbs = templates_cmd.add_subparsers(dest="templates_verb", required=True)
    templates_verbs.add_parser("check", help="check every template against its policy")
    preview = templates_verbs.add_parser("preview", help="render a template")
    preview.add_argument("name")
    preview.add_argument("--concern", help="our reference, SC-2026-00042 (default: sample)")

    concerns_cmd = verbs.add_parser("concerns", help="safer custody concerns")
    concerns_verbs = concerns_cmd.add_subparsers(dest="concerns_verb", required=True)
    concern_show = concerns_verbs.add_parser("show", help="one concern's full record")
    concern_show.add_argument("reference")
    respond = concerns_verbs.add_parser(
        "respond", help="record a response made outside mailbot (e.g. by phone)"
    )
    respond.add_argument("reference")
    respond.add_argument("--by", required=True)
    respond.add_argument("--method", required=True, choices=("phone", "email", "letter",
                                                              "in_person"))
    respond.add_argument("--note", default="")
    action = concerns_verbs.add_parser("action", help="record what was done for a concern")
    action.add_argument("reference")
    action.add_argument("--kind", required=True, help="welfare_check, referral, acct_opened...")
    action.add_argument("--by", required=True)
    action.add_argument("--note", default="")
    action.add_argument("--outcome", default="")
    action.add_argument("--department", help="for referrals: healthcare, mental_health...")
    action.add_argument("--when", help="when it happened (ISO 8601 with zone); default now")
    close = concerns_verbs.add_parser("close", help="close a concern (only ever by staff)")
    close.add_argument("reference")
    close.add_argument("--by", required=True)
    close.add_argument("--outcome", required=True)

    verbs.add_parser("status", help="health: polls, errors, queues, concerns by time left")

    retention = verbs.add_parser("retention", help="anonymise personal data past retention")
    retention.add_argument("--dry-run", action="store_true", help="only say what would go")

    config_cmd = verbs.add_parser("config", help="configuration")
    config_verbs = config_cmd.add_subparsers(dest="config_verb", required=True)
    config_verbs.add_parser("check", help="validate the configuration file and exit")
    return parser


# SQLAlchemy and the database layer are imported where used, not at the top: a worker
# process examining a backlog is spawned from this module, and needs neither.


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import OperationalError

    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _dispatch(args)
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return exc.exit_code
    except OperationalError as exc:
        print(f"mailbot: database error: {exc.orig}", file=sys.stderr)
        return DatabaseError.exit_code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from mailbot import db
    config = config_module.load(args.config)
    if args.verb == "config":
        print(f"configuration OK: {config.source}")
        return 0
    if args.verb == "templates" and args.templates_verb == "check":
        from mailbot.cli.staff import templates_check

        return templates_check(config)
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    if args.verb == "db":
        print("database schema is up to date")
        return 0
    sessions = db.session_factory(engine)
    if args.verb == "run":
        from mailbot.service.daemon import run_daemon, run_once

        return run_once(config, sessions) if args.once else run_daemon(config, sessions)
    if args.verb == "export":
        return _export(config, sessions, args)
    if args.verb == "report":
        from mailbot.reports.report import write_report

        with sessions() as session:
            path = write_report(session, config, args.month, args.output)
        print(f"wrote {path}")
        return 0
    if args.verb == "messages":
        return _messages(config, sessions, args)
    from mailbot.cli import staff
    return staff.dispatch(config, sessions, args)


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


def _export(config, sessions, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from mailbot.reports.export import log_entries, to_csv, to_json

    if args.format == "xlsx":
        from mailbot.reports.spreadsheet import write_xlsx

        if not (args.start and args.end and args.output):
            print("mailbot: --format xlsx needs --from, --to and --output", file=sys.stderr)
            return 2
        with sessions() as session:
            path = write_xlsx(session, config, args.start, args.end, args.output)
        print(f"wrote {path}")
        return 0

    with sessions() as session:
        entries = log_entries(session, config)
    text = to_json(entries) if args.format == "json" else to_csv(entries)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _replay(config, sessions, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from mailbot.ingest.pipeline import Pipeline
    from mailbot.ingest.quarantine import ReplayError, move_out_of_quarantine, replay

    pipeline = Pipeline(config, sessions)
    try:
        with sessions() as session:
            done = replay(session, config, pipeline.rules, args.id, by=args.by)
            session.commit()
    except ReplayError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 5
    if done.disposition == "quarantined":
        print(f"message {args.id} is still unreadable: {done.reason}")
        return 5
    moved = move_out_of_quarantine(config, done.message)
    pipeline.send()
    print(f"message {args.id} replayed: {done.disposition}"
          + (f" as {done.reference}" if done.reference else "")
          + ("; moved to the processed folder" if moved else ""))
    return 0


def _messages(config, sessions, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from mailbot.db.models import Contact, StoredMessage

    if args.messages_verb == "replay":
        return _replay(config, sessions, args)
    with sessions() as session:
        if args.messages_verb == "show":
            message = session.get(StoredMessage, args.id)
            if message is None:
                print(f"mailbot: no message {args.id}", file=sys.stderr)
                return 1
            if args.raw:
                sys.stdout.buffer.write(message.raw or b"")
                return 0
            print(json.dumps(_message_row(message), indent=2, ensure_ascii=False))
            return 0
        query = select(StoredMessage).order_by(StoredMessage.id)
        if args.disposition:
            query = query.where(StoredMessage.disposition == args.disposition)
        messages = session.execute(query).scalars().all()
        references = dict(
            (pk, ref) for pk, ref in session.execute(select(Contact.message_pk, Contact.reference))
        )
        rows = [_message_row(m, references.get(m.id)) for m in messages]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(f"{'id':>6}  {'received (UTC)':16}  {'kind':13} {'disposition':12} {'reference':14} why")
    for row in rows:
        print(
            f"{row['id']:>6}  {row['received_at'][:16].replace('T', ' '):16}  "
            f"{row['kind']:13} {row['disposition']:12} {row['reference'] or '-':14} "
            f"{row['reason']}"
        )
    return 0


def _message_row(message, reference: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": message.id,
        "received_at": message.received_at.isoformat(),
        "message_id": message.message_id,
        "kind": message.kind,
        "verified": message.verified,
        "disposition": message.disposition,
        "destination": message.destination,
        "reason": message.reason,
        "reference": reference or (message.contact.reference if message.contact else None),
        "size": message.size,
        "uid": message.uid,
        "recognition_reasons": list(message.recognition_reasons),
    }


if __name__ == "__main__":
    raise SystemExit(main())
