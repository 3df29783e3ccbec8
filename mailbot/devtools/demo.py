"""A demo of the main job on local servers: `./scripts/demo`.

Starts a throwaway Dovecot seeded with the sample messages (and a few real bounces), a
local SMTP sink and an SQLite database, runs `mailbot run --once` against them, then
shows what happened to each message, the communications log, and the run in numbers
(messages seen, logged, replied, drafted, alerted). The samples and bounces are the
repository's own, in tests/data/.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from mailbot import config as config_module
from mailbot.cli import main as mailbot
from mailbot.config import Config
from mailbot.devtools.devservers import Dovecot, SmtpSink, dovecot_available, write_config

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLES = REPO / "tests" / "data" / "samples"
DEFAULT_BOUNCES = REPO / "tests" / "data" / "realworld" / "bounces"


ALERTS = """[alerts]
safety_team = ["safety.team@prison.example"]
urgent = ["duty.governor@prison.example"]
"""


def run(samples: Path, keep: bool) -> int:
    if not dovecot_available():
        print("demo: Dovecot is not installed; run ./scripts/setup first", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="mailbot-demo-"))
    imap = Dovecot.start()
    smtp = SmtpSink.start()
    try:
        seeded = sorted(samples.glob("*.eml"))
        if not seeded:
            print(f"demo: no sample messages (*.eml) in {samples}", file=sys.stderr)
            return 1
        for path in seeded:
            imap.append(path.read_bytes())
        bounces = sorted(DEFAULT_BOUNCES.glob("*.eml"))[:3]
        for path in bounces:
            imap.append(path.read_bytes())
        config = str(write_config(root, imap, smtp.port, extra=ALERTS))
        print(f"== seeded the demo inbox with {len(seeded)} samples and {len(bounces)} bounces")
        print(f"== mailbot --config {config} run --once")
        status = mailbot(["--config", config, "run", "--once"])
        if status:
            return status
        print("\n== mailbot messages list: where each message went")
        mailbot(["--config", config, "messages", "list"])
        print("\n== mailbot drafts list: acknowledgements waiting for a member of staff")
        mailbot(["--config", config, "drafts", "list"])
        print("\n== mailbot status")
        mailbot(["--config", config, "status"])
        print("\n== mailbot export --format csv (the communications log)")
        mailbot(["--config", config, "export", "--format", "csv"])
        counts = imap.folder_counts("INBOX", "Processed", "Quarantine")
        print(f"\n== mailbox folders now: {counts}")
        print(f"== emails the SMTP sink received: {len(smtp.messages)}")
        print("\n== what happened")
        for line in what_happened(config_module.load(config)):
            print(f"   {line}")
        if keep:
            print(f"== kept everything under {root}")
        return 0
    finally:
        smtp.stop()
        imap.destroy()
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def what_happened(config: Config) -> list[str]:
    """The run in five numbers, read back from the communications log."""
    from sqlalchemy import func, select

    from mailbot import db
    from mailbot.db.models import Contact, Draft, OutboxEmail, StoredMessage

    engine = db.make_engine(config.database.url, config.database.lock_timeout_seconds)
    try:
        with db.session_factory(engine)() as session:
            def count(model, *where) -> int:  # type: ignore[no-untyped-def]
                return session.scalar(select(func.count()).select_from(model).where(*where))

            return [
                f"messages seen:  {count(StoredMessage)}",
                f"logged:         {count(Contact)} "
                f"({count(Contact, Contact.is_safer_custody.is_(True))} safer custody)",
                f"replied:        {count(OutboxEmail, OutboxEmail.kind == 'signposting')} "
                "signposting replies",
                f"drafted:        {count(Draft)} acknowledgements for staff to approve",
                f"alerted:        {count(OutboxEmail, OutboxEmail.kind == 'urgent_alert')} "
                "urgent alerts",
            ]
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailbot.devtools.demo")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--keep", action="store_true", help="keep the demo's files")
    args = parser.parse_args(argv)
    os.environ.pop("MAILBOT_CONFIG", None)
    return run(args.samples, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
