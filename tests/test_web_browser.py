"""The staff console as an officer uses it: headless Chromium (Debian's, driven by
Playwright) against a real `mailbot web` process on loopback, on a log that a real
`run --once` filled from real Dovecot, sending to the SMTP sink.

Every page a test visits is checked by axe-core (node_modules/axe-core) for WCAG 2.0,
2.1 and 2.2 A and AA failures, and for anything the browser refused or failed to load
(a script the CSP blocks, a missing stylesheet). With MAILBOT_SCREENSHOTS=docs set, the
queue, a concern and a draft are saved as docs/console-*.png (CI leaves it unset, so the
tree stays clean)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.cli import main
from mailbot.db.models import AuditEvent, Contact, Draft, StoredMessage, utcnow
from mailbot.devtools.devservers import free_port, wait_for_port
from tests.conftest import REPO
from tests.forms import portal_form

pytestmark = pytest.mark.servers

CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PASSWORD = "correct horse battery staple"
OFFICER = "Officer Smith"
FAMILY = "jane.family@example.com"
SCREENSHOTS = os.environ.get("MAILBOT_SCREENSHOTS", "")

if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed at /usr/bin/chromium: run ./scripts/test, which "
                "installs Debian's chromium", allow_module_level=True)

# The log the console is shown on: forms that arrived over the last three days, so that
# the queue has concerns with days left, hours left and overdue ones.
FORMS = (
    # (hours ago, form fields)
    (80, dict(name="Grace Demo", email="grace.demo@example.com", prisoner_name="Owen Demo",
              prisoner_number="A2345CD", location="B wing", topic="Bullying or violence",
              urgency="I am worried about their safety",
              text="My son says two men on his landing keep taking his canteen and hit him "
                   "on Tuesday. He is scared to leave his cell.")),
    (60, dict(name="Jane Family", email=FAMILY, prisoner_name="Johnny Prisoner",
              prisoner_number="A1234BC", location="Houseblock 4",
              topic="Self-harm or suicide", urgency="I am worried about their safety",
              text="He has been self harming again and says he is being bullied on the "
                   "wing.")),
    (30, dict(name="Priya Sample", email="priya.sample@example.com",
              prisoner_name="Rhys Sample", prisoner_number="A3456DE", location="C wing",
              topic="Mental health", urgency="I have a general question",
              text="He sounded very low on the phone last night and has stopped eating. "
                   "Could somebody check on him?")),
    (2, dict(name="Tom Tester", email="tom.tester@example.com", prisoner_name="Lee Tester",
             prisoner_number="A4567EF", location="A wing", topic="Self-harm or suicide",
             urgency="I think they are at immediate risk",
             text="He told me on the phone that he wants to end his life tonight and has "
                  "been saving his tablets.")),
    (5, dict(name="Sam Sample", email="sam.sample@example.net", topic="Visits",
             urgency="I have a general question",
             text="Can you tell me what time visits start on a Sunday?")),
)


class Console:
    """The console's servers, its database and the command line, for one test."""

    def __init__(self, config_path: Path, base_url: str, dovecot, smtp_sink,  # type: ignore[no-untyped-def]
                 capsys, tmp_path: Path) -> None:
        self.config_path, self.base_url = config_path, base_url
        self.dovecot, self.smtp_sink, self.capsys, self.tmp_path = (
            dovecot, smtp_sink, capsys, tmp_path)
        self.database = tmp_path / "mailbot.sqlite3"
        self.engine = db.make_engine(f"sqlite:///{self.database}")
        self.sessions = db.session_factory(self.engine)
        self.checked: list[str] = []

    def cli(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config_path), *args])
        captured = self.capsys.readouterr()
        return code, captured.out + captured.err

    def run_once(self) -> None:
        code, output = self.cli("run", "--once")
        assert code == 0, output

    def family_deliveries(self, address: str) -> list:  # type: ignore[type-arg]
        return [m for m in self.smtp_sink.parsed() if address in str(m["To"])]

    # --- In the browser ------------------------------------------------------------------

    def go(self, page, path: str):  # type: ignore[no-untyped-def]
        answer = page.goto(self.base_url + path)
        assert answer is not None and answer.ok, (path, answer and answer.status)
        self.check(page)
        return answer

    def check(self, page) -> None:  # type: ignore[no-untyped-def]
        assert_accessible(page)
        self.checked.append(page.url)

    def sign_in(self, page, name: str = OFFICER) -> None:  # type: ignore[no-untyped-def]
        self.go(page, "/queue")  # no session: sent to the sign-in page
        assert "/sign-in" in page.url
        page.get_by_label("Name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/queue$"))
        self.check(page)
        assert f"Signed in as {name}" in page.inner_text("header")

    def submit(self, page, button_name: str, *, exact: bool = False) -> None:  # type: ignore[no-untyped-def]
        with page.expect_navigation():
            page.get_by_role("button", name=button_name, exact=exact).click()
        self.check(page)

    def shoot(self, page, name: str) -> None:  # type: ignore[no-untyped-def]
        if SCREENSHOTS:
            target = REPO / SCREENSHOTS
            target.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target / f"console-{name}.png"), full_page=True)


@pytest.fixture
def console(dovecot, smtp_sink, make_config, capsys, tmp_path):  # type: ignore[no-untyped-def]
    port = free_port()
    secret = tmp_path / "web-session-secret"
    secret.write_text("x" * 48 + "\n")
    path, _ = make_config(smtp_port=smtp_sink.port, extra=f"""
[alerts]
safety_team = ["safety.team@prison.example"]

[replies]
retry_base_seconds = 0

[web]
listen = "127.0.0.1:{port}"
session_secret_file = "{secret}"
behind_tls = false
# Three wrong sign-ins from one computer stop it for three seconds.
address_attempts = 3
lockout_minutes = 0.05
""")
    now = utcnow()
    for hours_ago, fields in FORMS:
        dovecot.append(portal_form(**fields), internal_date=now - timedelta(hours=hours_ago))
    console = Console(path, f"http://127.0.0.1:{port}", dovecot, smtp_sink, capsys, tmp_path)
    console.run_once()
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    for name, role in ((OFFICER, "officer"), ("Manager Jones", "manager")):
        code, output = console.cli("users", "add", name, "--role", role,
                                   "--password-file", str(password_file))
        assert code == 0, output
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(path), "web"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            log.flush()
            pytest.fail("mailbot web did not start:\n"
                        + (tmp_path / "web.log").read_text(errors="replace")[-3000:])
        yield console
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        console.engine.dispose()


@pytest.fixture
def page():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      locale="en-GB", timezone_id="Europe/London")
        tab = context.new_page()
        problems: list[str] = []
        # A refused form is shown again with a 400 (a 429 when sign-ins are throttled),
        # and a page above the role is a 403, which Chromium logs as resources that
        # failed to load; anything else the
        # console says is an error is one.
        tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
               if m.type == "error" and not re.search(r"status of 4(00|03|29)\b", m.text)
               else None)
        tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # A request the browser itself cancelled (net::ERR_ABORTED: the favicon of a page
        # navigated away from before it loaded, seen under load) is no failure to load.
        tab.on("requestfailed", lambda r: problems.append(f"failed: {r.url}")
               if r.failure != "net::ERR_ABORTED" else None)
        # A page may answer 400 (a refused form, shown again with the reason); nothing it
        # loads may fail.
        tab.on("response", lambda r: problems.append(f"{r.status}: {r.url}")
               if r.status >= 400 and r.request.resource_type != "document" else None)
        yield tab
        browser.close()
    # A script the CSP refused, a stylesheet or font not found: the page is not as meant.
    assert problems == []


def assert_accessible(page) -> None:  # type: ignore[no-untyped-def]
    """axe-core on the page as it is now: no WCAG 2.2 A or AA violation."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    violations = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))",
        AXE_TAGS)
    assert violations == [], f"axe on {page.url}:\n" + "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"][:5])
        for v in violations)


def hours_in(words: str) -> float:
    """'31 hours left' 31, '40 minutes left' 0.67, 'overdue by 4 hours' -4, '3 days
    left' 72: the clock as the page says it."""
    match = re.fullmatch(r"(overdue by )?(\d+) (minute|hour|day)s?( left)?", words.strip())
    assert match, words
    size = {"minute": 1 / 60, "hour": 1, "day": 24}[match.group(3)]
    value = int(match.group(2)) * size
    return -value if match.group(1) else value


def queue_rows(page) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        "#queue tbody tr[data-reference]",
        "rows => rows.map(r => ({reference: r.dataset.reference,"
        " clock: r.querySelector('.mailbot-clock').innerText,"
        " urgency: r.querySelector('.mailbot-urgency').innerText}))")


def open_draft(console: Console, prisoner_number: str) -> tuple[str, int]:
    with console.sessions() as session:
        contact = session.execute(select(Contact).where(
            Contact.prisoner_number == prisoner_number).order_by(Contact.id.desc())
        ).scalars().first()
        [draft] = [d for d in contact.drafts if d.status == "draft"]
        return contact.reference, draft.id


# --- The tests --------------------------------------------------------------------------


def test_the_accessibility_check_finds_what_it_should(page, tmp_path):
    """axe-core really runs: a field without a label and text too pale to read fail."""
    checker = Console.__new__(Console)
    checker.checked = []
    page.set_content('<!DOCTYPE html><html lang="en"><head><title>t</title></head><body>'
                     '<main><h1>Test</h1><input type="text">'
                     '<p style="color: #ccc">pale</p></main></body></html>')
    with pytest.raises(AssertionError) as failed:
        checker.check(page)
    assert "label" in str(failed.value) and "color-contrast" in str(failed.value)


def test_the_queue_in_time_left_order_and_a_concern(console, page):
    console.sign_in(page)
    rows = queue_rows(page)
    with console.sessions() as session:
        expected = set(session.execute(select(Contact.reference).where(
            Contact.is_safer_custody.is_(True), Contact.responded_at.is_(None))).scalars())
    assert {r["reference"] for r in rows} == expected and len(rows) >= 3
    # Most urgent first; within an urgency, the least time left first.
    ranks = {"immediate": 0, "urgent": 1, "routine": 2}
    keys = [(ranks[r["urgency"].split("\n")[0].strip()], hours_in(r["clock"])) for r in rows]
    assert keys == sorted(keys), rows
    assert rows[0]["urgency"].startswith("immediate")
    assert any(hours_in(r["clock"]) < 0 for r in rows)  # the 80-hour-old one is overdue
    console.shoot(page, "queue")

    # Time left only: strictly by the clock, whatever the urgency.
    console.go(page, "/queue?sort=time")
    clocks = [hours_in(r["clock"]) for r in queue_rows(page)]
    assert clocks == sorted(clocks) and clocks[0] < 0

    # Filtered by wing, as typed.
    with console.sessions() as session:
        on_b = session.execute(select(Contact.reference).where(
            Contact.prisoner_number == "A2345CD")).scalar_one()
    console.go(page, "/queue?wing=b+wing")
    assert [r["reference"] for r in queue_rows(page)] == [on_b]

    # A concern: the form as the family filled it, the triage, the history.
    first = rows[0]["reference"]
    console.go(page, "/queue")
    page.get_by_role("link", name=first, exact=True).click()
    page.wait_for_url(re.compile(f"/concerns/{first}$"))
    console.check(page)
    main_text = page.inner_text("main")
    assert "Tom Tester" in main_text and "wants to end his life tonight" in main_text
    assert "Why mailbot put it here" in main_text and "History" in main_text
    console.shoot(page, "concern")
    page.get_by_role("link", name="Show the raw message").click()
    console.check(page)
    assert "Safer Custody Contact Form" in page.inner_text("main")
    console.go(page, "/drafts")
    console.go(page, "/consent")
    console.go(page, "/quarantine")
    console.go(page, "/health")


def test_an_edited_draft_is_approved_and_delivered_once(console, page):
    reference, draft_id = open_draft(console, "A3456DE")
    console.sign_in(page)
    console.go(page, "/drafts")
    page.get_by_role("link", name=f"Draft {draft_id}", exact=True).click()
    page.wait_for_url(re.compile(f"/drafts/{draft_id}$"))
    console.check(page)
    assert reference in page.inner_text("#subject")
    console.shoot(page, "draft")
    box = page.get_by_label("Text part (edit before approving)")
    edited = box.input_value().replace(
        "Thank you for contacting", "Thank you, Priya, for contacting", 1)
    assert edited != box.input_value()
    box.fill(edited)
    console.submit(page, "Approve and send")
    banner = page.inner_text(".govuk-notification-banner")
    assert f"Draft {draft_id} approved for {reference} and sent" in banner

    [delivered] = console.family_deliveries("priya.sample@example.com")
    assert "Thank you, Priya, for contacting" in delivered.get_body(("plain",)).get_content()
    assert reference in delivered["Subject"]
    # The daemon's next pass sends nothing again.
    console.run_once()
    assert len(console.family_deliveries("priya.sample@example.com")) == 1

    console.go(page, f"/concerns/{reference}")
    assert "responded" in page.inner_text("h1")
    with console.sessions() as session:
        actors = {(e.action, e.actor) for e in session.execute(
            select(AuditEvent).where(AuditEvent.draft_id == draft_id)).scalars()}
    assert ("draft_edited", OFFICER) in actors and ("draft_approved", OFFICER) in actors


def test_consent_granted_then_withdrawn_refuses_the_approval_with_the_reason(console, page):
    console.sign_in(page)
    console.go(page, "/consent")
    grant = page.locator("#grant")
    grant.get_by_label("Prisoner number").fill("A5678FG")
    grant.get_by_label("Contact (email address, or Name|phone)").fill("mary.sample@example.com")
    grant.get_by_label("What may be shared").select_option("full")
    grant.get_by_label("Note").fill("Prisoner agreed on the wing, 2 December")
    console.submit(page, "Record consent")
    assert "Consent 'full' recorded" in page.inner_text(".govuk-notification-banner")
    assert "A5678FG" in page.inner_text("table")

    # A new form from that family, under the consent: a draft that names the prisoner.
    console.dovecot.append(portal_form(
        name="Mary Sample", email="mary.sample@example.com", prisoner_name="Kieran Sample",
        prisoner_number="A5678FG", location="D wing", topic="Mental health",
        urgency="I am worried about their safety",
        text="Kieran has not called for a week and his cellmate told me he is not eating."))
    console.run_once()
    reference, draft_id = open_draft(console, "A5678FG")
    with console.sessions() as session:
        assert session.get(Draft, draft_id).template == "ack_consent"

    # Meanwhile the prisoner withdraws consent.
    console.go(page, "/consent?prisoner=A5678FG")
    withdraw = page.locator("#withdraw")
    withdraw.get_by_label("Prisoner number").fill("A5678FG")
    withdraw.get_by_label("Contact (email address, or Name|phone)").fill(
        "mary.sample@example.com")
    console.submit(page, "Withdraw consent")
    assert "Consent withdrawn (1 record(s))" in page.inner_text(".govuk-notification-banner")

    console.go(page, f"/drafts/{draft_id}")
    page.get_by_label("Text part (edit before approving)").fill(
        "Dear Mary Sample,\n\nKieran Sample was seen on D wing today and is safe.\n")
    console.submit(page, "Approve and send")
    problem = page.inner_text(".govuk-error-summary")
    assert page.title().startswith("Error: Draft ")  # said first by a screen reader
    assert f"Draft {draft_id} was written with consent 'full'" in problem
    assert "what is in force now is 'none', which allows only the acknowledgement without " \
        "consent" in problem
    assert "Redraft for the consent in force now" in problem  # the console's button
    assert "mailbot drafts" not in problem  # not the command line's words
    assert console.family_deliveries("mary.sample@example.com") == []
    with console.sessions() as session:
        assert session.get(Draft, draft_id).status == "draft"


def test_a_response_by_phone_stops_the_clock(console, page):
    with console.sessions() as session:
        reference = session.execute(select(Contact.reference).where(
            Contact.prisoner_number == "A2345CD")).scalar_one()
    console.sign_in(page)
    console.go(page, f"/concerns/{reference}")
    page.get_by_label("By phone").check()
    page.locator("#respond-note").fill("Spoke to Grace; wing staff told, welfare check done")
    console.submit(page, "Record response")
    assert "Response recorded" in page.inner_text(".govuk-notification-banner")
    heading = page.inner_text("h1")
    assert "responded" in heading and OFFICER in heading
    assert "response recorded" in page.inner_text(".moj-timeline")
    console.go(page, "/queue")
    assert reference not in [r["reference"] for r in queue_rows(page)]
    with console.sessions() as session:
        contact = session.execute(select(Contact).where(
            Contact.reference == reference)).scalar_one()
        assert contact.responded_by == OFFICER


def test_a_quarantined_message_is_replayed(console, page):
    """A form the database refused to store is quarantined; once the database is mended,
    replaying it from the console logs it as a concern with a draft."""
    with sqlite3.connect(console.database) as raw:
        raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON contacts WHEN "
                    "NEW.submitter_name = 'Nora Placeholder' BEGIN "
                    "SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END")
    console.dovecot.append(portal_form(
        name="Nora Placeholder", email="nora.placeholder@example.com",
        prisoner_name="Ian Placeholder", prisoner_number="A6789GH", location="A wing",
        topic="Bullying or violence", urgency="I am worried about their safety",
        text="Ian says he owes money to someone on the wing and they threatened him."))
    console.run_once()
    assert console.dovecot.folder_counts("Quarantine")["Quarantine"] == 1
    with sqlite3.connect(console.database) as raw:
        raw.execute("DROP TRIGGER refuse")
    with console.sessions() as session:
        [message_id] = session.execute(select(StoredMessage.id).where(
            StoredMessage.disposition == "quarantined")).scalars()

    console.sign_in(page)
    console.go(page, "/quarantine")
    assert "could not be stored" in page.inner_text("table")
    page.get_by_role("link", name=f"Message {message_id}", exact=True).click()
    console.check(page)
    assert "Ian says he owes money" in page.inner_text("pre")
    console.submit(page, f"Replay message {message_id}")
    banner = page.inner_text(".govuk-notification-banner")
    assert f"Message {message_id} replayed: logged as SC-" in banner, banner
    assert "moved to the processed folder" in banner
    assert "Nothing in quarantine." in page.inner_text("table")
    assert console.dovecot.folder_counts("Quarantine")["Quarantine"] == 0
    reference = re.search(r"SC-\d{4}-\d{5}", banner).group(0)
    console.go(page, f"/concerns/{reference}")
    assert "Nora Placeholder" in page.inner_text("main")
    with console.sessions() as session:
        [replayed] = session.execute(select(AuditEvent).where(
            AuditEvent.action == "message_replayed")).scalars()
        assert replayed.actor == OFFICER


def test_a_wrong_password_a_page_above_the_role_and_the_audit_trail(console, page):
    console.go(page, "/sign-in")
    for name in (OFFICER, "Manager Jones", "Nobody"):
        page.get_by_label("Name").fill(name)
        page.get_by_label("Password").fill("not the password")
        console.submit(page, "Sign in")
        assert "The name or password is not right." in page.inner_text(
            ".govuk-error-summary")
    # Three wrong from this computer: even the right password waits.
    page.get_by_label("Name").fill(OFFICER)
    page.get_by_label("Password").fill(PASSWORD)
    console.submit(page, "Sign in")
    assert "Too many wrong sign-ins from this computer" in page.inner_text(
        ".govuk-error-summary")
    time.sleep(3.5)
    console.sign_in(page)
    answer = page.goto(console.base_url + "/audit")
    assert answer.status == 403
    console.check(page)
    assert "It needs the manager role" in page.inner_text("main")
    assert page.get_by_role("link", name="Audit trail").count() == 0  # not offered either
    console.submit(page, "Sign out")
    assert "/sign-in" in page.url

    console.sign_in(page, "Manager Jones")
    page.get_by_role("link", name="Audit trail").click()
    console.check(page)
    rows = page.inner_text("table")
    assert "Manager Jones\tuser signed in" in rows and "Officer Smith\tuser signed in" in rows
    assert "mailbot\tsign in throttled" in rows
