"""A demo of the main job on local servers: `./scripts/demo`.

Starts a throwaway Dovecot seeded with the sample messages (and a few real bounces), a
local SMTP sink and an SQLite database, runs `mailbot run --once` against them, then
shows what happened to each message and the communications log.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from mailbot.cli import main as mailbot
from mailbot.devtools.devservers import Dovecot, SmtpSink, dovecot_available, write_config

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLES = REPO.parent / "shared" / "samples"
DEFAULT_BOUNCES = REPO.parent / "shared" / "realworld" / "bounces"


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
        if keep:
            print(f"== kept everything under {root}")
        return 0
    finally:
        smtp.stop()
        imap.destroy()
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailbot.devtools.demo")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--keep", action="store_true", help="keep the demo's files")
    args = parser.parse_args(argv)
    os.environ.pop("MAILBOT_CONFIG", None)
    return run(args.samples, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
