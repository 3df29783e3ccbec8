"""The staff console on a big log: median and p95 time of the queue page and of a concern
page, served by a real `mailbot web` over loopback, on a log of N concerns.

    .venv/bin/python bench/web.py [--concerns 20000] [--open-share 0.25]
                                  [--database sqlite|postgresql] [--requests 50]

The log is filled through the project's own models (one bulk insert per table): each
concern with its stored message, a draft, a few audit events, and for some a consent
record and a casework action; a share of them still open (no response), the rest
answered over the eighteen months before. PostgreSQL is a throwaway database on
127.0.0.1:5432 (as the tests use). An officer signs in, then the queue's first page,
its later pages and filters, and randomly chosen concerns are each fetched --requests
times. Figures, not assertions: compare runs on the same machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from mailbot import db  # noqa: E402
from mailbot.db.models import (  # noqa: E402
    AuditEvent,
    ConcernAction,
    ConsentRecord,
    Contact,
    Draft,
    StoredMessage,
)
from mailbot.devtools.devservers import (  # noqa: E402
    config_text,
    free_port,
    throwaway_postgres_database,
    wait_for_port,
)
from mailbot.web import accounts  # noqa: E402

PASSWORD = "benchmark password 1"
CATEGORIES = ("suicide_self_harm", "mental_health", "bullying_violence_threats", "debt",
              "drugs_alcohol", "physical_health_medication", "bereavement")
URGENCIES = (("immediate", 5), ("urgent", 35), ("routine", 60))
WINGS = ("A wing", "B wing", "C wing", "D wing", "Healthcare unit", "Segregation unit", "")
TEXTS = (
    "He rang me last night and sounded very low. Could someone check on him?",
    "She says she owes money on the wing and is scared to leave her cell.",
    "My son told me two men on his landing keep taking his canteen and hit him.",
    "He has not been given his medication for three days and is in pain.",
    "His grandmother died on Sunday and I do not think anyone has told him.",
)


def fill(sessions, concerns: int, open_share: float, seed: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    """N concerns and what hangs off them; returns the references of the open ones."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    messages, contacts, drafts, events, consents, actions = [], [], [], [], [], []
    open_references = []
    levels = [u for u, weight in URGENCIES for _ in range(weight)]
    for n in range(1, concerns + 1):
        is_open = rng.random() < open_share
        # Open ones arrived over the last four days (some overdue); the rest over 18 months.
        received = now - timedelta(hours=rng.uniform(0, 96) if is_open
                                   else rng.uniform(96, 24 * 540))
        reference = f"SC-{received.year}-{n:05d}"
        email = f"family{n % 4000}@example.com"
        prisoner = f"A{1000 + n % 3000:04d}BC"
        raw = (f"From: Family {n} <{email}>\r\nSubject: Safer Custody Contact Form\r\n\r\n"
               f"{rng.choice(TEXTS)}\r\n").encode()
        messages.append(dict(
            id=n, sha256=f"{n:064x}", message_id=f"<bench-{n}@portal.example.org>",
            mailbox_folder="INBOX", received_at=received, ingested_at=received, size=len(raw),
            kind="portal_form", verified=True, recognition_reasons=[], disposition="logged",
            reason="", sender=email, subject="Safer Custody Contact Form", raw=raw))
        responded = None if is_open else received + timedelta(hours=rng.uniform(1, 70))
        contacts.append(dict(
            id=n, reference=reference, message_pk=n, source="portal_form", verified=True,
            received_at=received, logged_at=received,
            status="new" if is_open else rng.choice(("responded", "closed")),
            submitter_name=f"Family Member {n}", submitter_email=email,
            submitter_email_valid=True, submitter_phone="07700 900123",
            relationship_to_prisoner="Mother", prisoner_name=f"Prisoner {n}",
            prisoner_number=prisoner, establishment="HMP Exampletown",
            location=rng.choice(WINGS), topic="Self-harm or suicide",
            concern_text=rng.choice(TEXTS), flags=[], problems=[], is_safer_custody=True,
            categories=rng.sample(CATEGORIES, rng.choice((1, 1, 2))),
            urgency=rng.choice(levels),
            triage_reasons=['suicide_self_harm: "very low" (urgent, rule mental_distress)'],
            unaccounted=[], responded_at=responded,
            responded_by=None if is_open else "Officer Smith"))
        drafts.append(dict(
            id=n, contact_id=n, template="ack_no_consent", consent_scope="none",
            status="draft" if is_open else "sent", recipient=email,
            subject=f"Your message to the safer custody team [{reference}]",
            body_text="Dear Family Member,\n\nThank you for contacting the safer custody "
                      "team.\n", message_id=f"<draft-{n}@prison.example>",
            created_at=received))
        events.append(dict(at=received, actor="mailbot", action="draft_created",
                           contact_id=n, draft_id=n, detail={"template": "ack_no_consent"}))
        if not is_open:
            events.append(dict(at=responded, actor="Officer Smith", action="draft_approved",
                               contact_id=n, draft_id=n, detail={}))
            events.append(dict(at=responded, actor="mailbot", action="draft_sent",
                               contact_id=n, draft_id=n, detail={}))
        if n % 5 == 0:
            consents.append(dict(prisoner_number=prisoner, contact_key=email,
                                 scope=rng.choice(("wellbeing", "full", "restricted")),
                                 recorded_by="Officer Smith", recorded_at=received, note=""))
        if n % 3 == 0:
            actions.append(dict(contact_id=n, kind="welfare_check", happened_at=received,
                                recorded_at=received, by="Officer Smith", note="seen"))
        if is_open:
            open_references.append(reference)
    with sessions() as session:
        for model, rows in ((StoredMessage, messages), (Contact, contacts), (Draft, drafts),
                            (AuditEvent, events), (ConsentRecord, consents),
                            (ConcernAction, actions)):
            for start in range(0, len(rows), 2000):
                session.execute(insert(model), rows[start:start + 2000])
        accounts.add(session, "Officer Smith", "officer", PASSWORD, by="bench")
        session.commit()
    return open_references


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    took = []
    for path in paths:
        start = time.perf_counter()
        answer = client.get(path)
        took.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concerns", type=int, default=20000)
    parser.add_argument("--open-share", type=float, default=0.25)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-web-")))
        url = (f"sqlite:///{root / 'mailbot.sqlite3'}" if args.database == "sqlite"
               else stack.enter_context(throwaway_postgres_database("benchweb")))
        engine = db.make_engine(url)
        stack.callback(engine.dispose)
        db.upgrade(engine)
        started = time.perf_counter()
        references = fill(db.session_factory(engine), args.concerns, args.open_share)
        print(f"{args.database}: {args.concerns} concerns, {len(references)} open, "
              f"filled in {time.perf_counter() - started:.1f} s")

        port = free_port()
        secret = root / "session-secret"
        secret.write_text("b" * 48)
        password = root / "imap-password"
        password.write_text("unused\n")
        config = root / "mailbot.toml"
        config.write_text(config_text(
            imap_port=1, username="bench", password_file=password, database_url=url,
            state_dir=root, extra=f'[web]\nlisten = "127.0.0.1:{port}"\n'
                                  f'session_secret_file = "{secret}"\nbehind_tls = false\n'))
        log = stack.enter_context((root / "web.log").open("w"))
        server = subprocess.Popen([sys.executable, "-m", "mailbot", "--config", str(config),
                                   "web"], stdout=log, stderr=subprocess.STDOUT)
        stack.callback(server.wait)
        stack.callback(server.terminate)
        wait_for_port(port, timeout=30)

        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                                  timeout=60))
        sign_in = client.get("/sign-in").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', sign_in).group(1)
        answer = client.post("/sign-in", data={"name": "Officer Smith", "password": PASSWORD,
                                               "csrf_token": token})
        assert answer.status_code == 303, answer.text
        rng = random.Random(2)
        n = args.requests
        timed(client, ["/queue", f"/concerns/{references[0]}"])  # warm up
        pages = -(-len(references) // 50)
        runs = {
            "queue, first page": ["/queue"] * n,
            "queue, a later page": [f"/queue?page={rng.randint(2, pages)}" for _ in range(n)],
            "queue, filtered (urgent, wing)": ["/queue?urgency=urgent&wing=B+wing"] * n,
            "queue, time left only": ["/queue?sort=time"] * n,
            "a concern": [f"/concerns/{rng.choice(references)}" for _ in range(n)],
        }
        print(f"{'page':34} {'median':>9} {'p95':>9}   ({n} requests each)")
        for name, paths in runs.items():
            took = timed(client, paths)
            print(f"{name:34} {statistics.median(took):7.1f} ms {percentile(took, 0.95):6.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
