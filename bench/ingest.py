"""Ingestion throughput: `run --once` over N generated portal forms, beside the raw rate
at which imap-tools alone fetches the same messages from the same Dovecot.

    .venv/bin/python bench/ingest.py [--forms 2000] [--database sqlite|postgresql] [--runs 3]
    .venv/bin/python bench/ingest.py --instructions [--forms 300]

Prints forms per second for both, their ratio, and the peak memory of the `run --once`
process. Figures, not assertions: compare runs on the same machine.

A shared machine's speed drifts by a third from one hour to the next; `--instructions`
counts what `run --once` executes instead (valgrind's callgrind, the same count whatever
else the machine does), on an empty inbox and on --forms forms, and prints the fixed cost
of a start, the cost of a form, and what 2,000 forms would cost: figures to compare
builds by across sessions and machines. It takes about five minutes for 300 forms.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.devtools.devservers import (  # noqa: E402
    Dovecot,
    SmtpSink,
    throwaway_postgres_database,
    write_config,
)
from tests.forms import portal_form  # noqa: E402

TOPICS = ["Self-harm or suicide", "Visits", "Debt", "Property", "Mental health", "Money"]
SENTENCES = [
    "He rang me last night and sounded very low.",
    "Can you tell me what time visits start on a Sunday?",
    "She says she owes money on the wing and is scared.",
    "Where do I send his clothes?",
    "He has not been eating and will not leave his cell.",
    "My PIN credit has not arrived.",
]


def generated_form(number: int, rng: random.Random, message_id: str | None = None) -> bytes:
    return portal_form(
        text="\n".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 6))),
        topic=rng.choice(TOPICS),
        name=f"Family Member {number}",
        email=f"family{number}@example.com",
        prisoner_name=f"Prisoner {number}",
        prisoner_number=f"a{number % 10000:04d}bc",
        reference=f"PFH-SC-20261114-{number:05d}",
        message_id=message_id,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", type=int, default=2000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat on a fresh inbox and database; prints the median")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions with callgrind instead of timing")
    args = parser.parse_args()
    rng = random.Random(42)
    messages = [generated_form(i, rng) for i in range(args.forms)]
    if args.instructions:
        return count_instructions(messages, args.database)
    print(f"forms: {args.forms} ({sum(len(m) for m in messages) / 1e6:.1f} MB), "
          f"database: {args.database}, CPUs: {os.cpu_count()}")
    runs = []
    for number in range(args.runs):
        figures = one_run(messages, args.database)
        if figures is None:
            return 1
        runs.append(figures)
        if args.runs > 1:
            print(f"run {number + 1}: {figures['run_rate']:.0f} forms/s, "
                  f"raw fetch {figures['fetch_rate']:.0f} forms/s")
    median = sorted(runs, key=lambda f: f["run_rate"])[len(runs) // 2]
    rates = [f["run_rate"] for f in runs]
    print(f"append to Dovecot:           {median['append_rate']:8.0f} forms/s")
    print(f"imap-tools raw fetch:        {median['fetch_rate']:8.0f} forms/s "
          f"({median['fetch_seconds']:.2f} s)")
    print(f"mailbot run --once:          {median['run_rate']:8.0f} forms/s "
          f"({median['run_seconds']:.2f} s, including process start and schema check)"
          + (f", median of {len(runs)}: {min(rates):.0f} to {max(rates):.0f}"
             if len(runs) > 1 else ""))
    print(f"ratio run/raw fetch:         {median['run_rate'] / median['fetch_rate']:8.2f}")
    print(f"CPU per form:                {median['cpu_ms']:8.2f} ms (mailbot and its workers)")
    print(f"peak memory of run --once:   {median['peak_mib']:8.0f} MiB (the largest process)")
    print(f"mailbox after the run:       {median['counts']}")
    print(f"signposting replies sent:    {median['sent']:8d}")
    return 0


def count_instructions(messages: list[bytes], database: str) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian package valgrind)", file=sys.stderr)
        return 1
    counts = []
    for batch in ([], messages):
        counted = one_run(batch, database, ["valgrind", "--tool=callgrind",
                                            "--callgrind-out-file=/dev/null"])
        if counted is None:
            return 1
        counts.append(counted["instructions"])
    per_form = (counts[1] - counts[0]) / len(messages)
    print(f"run --once, empty inbox:     {counts[0] / 1e9:8.2f} G instructions (a start)")
    print(f"run --once, {len(messages)} forms:      {counts[1] / 1e9:8.2f} G instructions")
    print(f"per form:                    {per_form / 1e6:8.1f} M instructions")
    print(f"2,000 forms (start + forms): {(counts[0] + 2000 * per_form) / 1e9:8.1f} G")
    return 0


def one_run(messages: list[bytes], database: str,
            wrapper: list[str] | None = None) -> dict[str, Any] | None:
    with ExitStack() as cleanup:
        root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mailbot-bench-")))
        server = Dovecot.start()
        cleanup.callback(server.destroy)
        smtp = SmtpSink.start()
        cleanup.callback(smtp.stop)
        if database == "sqlite":
            url = f"sqlite:///{root / 'bench.sqlite3'}"
        else:
            url = cleanup.enter_context(throwaway_postgres_database("mailbot_bench"))
        return _timed_run(messages, root, server, smtp, url, wrapper or [])


def _timed_run(messages: list[bytes], root: Path, server: Dovecot, smtp: SmtpSink,
               url: str, wrapper: list[str]) -> dict[str, Any] | None:
    started = time.perf_counter()
    with server.mailbox() as box:
        for raw in messages:
            box.append(raw, "INBOX", flag_set=())
    append_seconds = time.perf_counter() - started

    # The same messages fetched by imap-tools alone: the ceiling for this server.
    started = time.perf_counter()
    with server.mailbox() as box:
        box.folder.set("INBOX")
        fetched = sum(1 for _ in box.fetch(mark_seen=False, bulk=200))
    fetch_seconds = time.perf_counter() - started
    assert fetched == len(messages), fetched

    config_path = write_config(root, server, smtp.port, database_url=url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [*wrapper, sys.executable, "-m", "mailbot", "--config", str(config_path), "run",
         "--once"],
        capture_output=True,
        text=True,
    )
    run_seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        print(result.stderr[-3000:], file=sys.stderr)
        return None
    counted = re.search(r"Collected : (\d+)", result.stderr)
    return {
        "instructions": int(counted.group(1)) if counted else 0,
        "append_rate": len(messages) / max(append_seconds, 1e-9),
        "fetch_rate": len(messages) / fetch_seconds,
        "fetch_seconds": fetch_seconds,
        "run_rate": len(messages) / run_seconds,
        "run_seconds": run_seconds,
        # CPU of mailbot and the workers it waited for: steadier than the wall clock.
        "cpu_ms": 1000 * (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        / max(len(messages), 1),
        # ru_maxrss of children is the largest of them: mailbot or one of its workers.
        "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "counts": server.folder_counts("INBOX", "Processed", "Quarantine"),
        "sent": len(smtp.messages),
    }


if __name__ == "__main__":
    raise SystemExit(main())
