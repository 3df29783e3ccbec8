"""Entra ID sign-in as staff meet it: headless Chromium (Debian's, driven by Playwright)
against a real `mailbot web` process on plain-HTTP loopback and the local OpenID Connect
provider over HTTPS (mailbot/devtools/oidcserver.py) at https://localhost, another site
to the browser, showing a page of its own whose link the person follows back, as at
Microsoft's sign-in page. This is where the cookies' SameSite rules are seen to hold:
the navigation back is the provider's, cross-site, so only the Lax state cookie comes
with it, and the Strict session cookie set then is sent on the queue because the
console's own page moves on to it (a redirect straight from the callback was tried: it
lands on the sign-in page again). A form POST redirected to the provider is allowed by
the sign-in page's CSP form-action. axe-core checks each page that stays on screen."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.devtools.devservers import free_port, wait_for_port
from mailbot.devtools.oidcserver import TENANT, OidcServer, Person
from tests.test_web_browser import assert_accessible as accessible

pytestmark = pytest.mark.servers

CHROMIUM = Path("/usr/bin/chromium")
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "console-client-secret-17"
OFFICERS = "0f3c1c5e-officers"

if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed at /usr/bin/chromium: run ./scripts/test, which "
                "installs Debian's chromium", allow_module_level=True)


@pytest.fixture
def console(ca, tmp_path):  # type: ignore[no-untyped-def]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = OidcServer(ca, CLIENT_ID, SECRET, base + "/sign-in/entra/callback",
                          host="localhost").start()
    provider.interactive = True
    bundle = tmp_path / "provider-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    (tmp_path / "web-session-secret").write_text("x" * 48 + "\n")
    (tmp_path / "entra-console-secret").write_text(SECRET + "\n")
    config = tmp_path / "mailbot.toml"
    config.write_text(f"""
[prison]
name = "HMP Exampletown"

[mailbox]
host = "127.0.0.1"
port = 1
username = "safercustody@prison.example"
password_env = "UNUSED"

[smtp]
host = "127.0.0.1"
port = 1
from_address = "safercustody@prison.example"

[state]
directory = "{tmp_path / 'state'}"

[web]
listen = "127.0.0.1:{port}"
session_secret_file = "{tmp_path / 'web-session-secret'}"
behind_tls = false

[web.oidc]
provider = "microsoft"
tenant_id = "{TENANT}"
authority_host = "{provider.authority_host}"
client_id = "{CLIENT_ID}"
client_secret_file = "{tmp_path / 'entra-console-secret'}"
redirect_base = "{base}"
ca_file = "{bundle}"
local_accounts = false

[web.oidc.groups]
"{OFFICERS}" = "officer"
""")
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "mailbot", "--config", str(config),
                                "web"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            log.flush()
            pytest.fail("mailbot web did not start:\n"
                        + (tmp_path / "web.log").read_text(errors="replace")[-3000:])
        yield base, provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        provider.stop()


@pytest.fixture
def page():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        # The provider's certificate is the test CA's, which Chromium does not know.
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      locale="en-GB", ignore_https_errors=True)
        tab = context.new_page()
        problems: list[str] = []
        tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        tab.on("response", lambda r: problems.append(f"{r.status}: {r.url}")
               if r.status >= 400 and r.request.resource_type != "document" else None)
        yield tab
        browser.close()
    assert problems == []


def test_staff_sign_in_with_microsoft_in_a_real_browser(console, page):
    base, provider = console
    provider.sign_in_as(Person("Jane Smith", "jane.smith@prison.gov.uk", groups=[OFFICERS]))
    page.goto(base + "/queue")
    assert "/sign-in" in page.url
    accessible(page)
    # local_accounts = false: no name or password to fill.
    assert page.get_by_label("Password").count() == 0
    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url))
    page.get_by_role("button", name="Sign in with Microsoft").click()
    # At the provider's own page (another site), the person chooses to go on.
    page.get_by_role("link", name="Continue as Jane Smith").click()
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/queue$"))
    assert any("/sign-in/entra/callback?code=" in url for url in visited), visited
    accessible(page)
    header = page.inner_text("header")
    assert "Jane Smith <jane.smith@prison.gov.uk> (Entra ID)" in header
    assert page.get_by_role("heading", level=1).first.inner_text().startswith("Queue") or \
        "Queue" in page.title()

    # Someone in none of the groups: told to ask for one, and not let in.
    page.context.clear_cookies()
    provider.sign_in_as(Person("Sam Other", "sam.other@prison.gov.uk", groups=["elsewhere"]))
    page.goto(base + "/sign-in")
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.get_by_role("link", name="Continue as Sam Other").click()
    page.wait_for_load_state()
    assert "not in any of the groups that give access" in page.inner_text("main")
    accessible(page)
    page.goto(base + "/queue")
    assert "/sign-in" in page.url
