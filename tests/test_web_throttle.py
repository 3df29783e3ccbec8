"""Sign-in attempts are limited per client address as well as per account: one computer
trying wrong passwords at many names is stopped, right password or not, while officers
at other computers sign in as usual; the moment it is stopped is in the audit trail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mailbot.db.models import AuditEvent
from mailbot.web.throttle import AddressThrottle
from tests.web_support import PASSWORD, console_app

ATTEMPTS = 5


@pytest.fixture
def app(tmp_path):  # type: ignore[no-untyped-def]
    with console_app(tmp_path, staff=(("Officer Smith", "officer"),),
                     web={"address_attempts": ATTEMPTS, "lockout_after": 10}) as application:
        yield application


def sign_in(browser: TestClient, name: str, password: str) -> int:
    page = browser.get("/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return browser.post("/sign-in", data={"name": name, "password": password,
                                          "csrf_token": csrf}).status_code


def test_one_address_guessing_at_many_names_is_stopped(app):
    guesser = TestClient(app, base_url="https://testserver", follow_redirects=False,
                         client=("203.0.113.9", 40000))
    # One wrong password at each of several names: no account reaches its own lockout.
    for n in range(ATTEMPTS):
        assert sign_in(guesser, f"Officer {n}", "wrong password") == 400
    assert sign_in(guesser, "Officer Smith", "wrong") == 429
    refused = guesser.post("/sign-in", data={})  # no token: refused before counting
    assert refused.status_code == 403
    # The right password from that computer is refused too, without being checked...
    page = guesser.get("/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = guesser.post("/sign-in", data={"name": "Officer Smith", "password": PASSWORD,
                                            "csrf_token": csrf})
    assert answer.status_code == 429
    assert "Too many wrong sign-ins from this computer" in answer.text
    # ...while the officer at another computer signs in, the account not locked.
    officer = TestClient(app, base_url="https://testserver", follow_redirects=False,
                         client=("198.51.100.20", 40000))
    assert sign_in(officer, "Officer Smith", PASSWORD) == 303
    with app.state.sessions() as session:
        events = [(e.action, e.detail) for e in session.execute(
            select(AuditEvent).order_by(AuditEvent.id)).scalars()]
    assert ("sign_in_throttled", {"address": "203.0.113.9", "attempts": ATTEMPTS}) in events
    assert [a for a, _ in events].count("sign_in_throttled") == 1
    assert "user_locked_out" not in [a for a, _ in events]


def test_the_address_may_try_again_once_its_oldest_failure_is_old_enough():
    throttle = AddressThrottle(3, timedelta(minutes=15))
    start = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    for minute in (0, 5, 10):
        assert throttle.blocked_until("10.0.0.1", start) is None
        throttle.failed("10.0.0.1", start + timedelta(minutes=minute))
    now = start + timedelta(minutes=11)
    assert throttle.blocked_until("10.0.0.1", now) == start + timedelta(minutes=15)
    assert throttle.blocked_until("10.0.0.2", now) is None
    assert throttle.blocked_until("10.0.0.1", start + timedelta(minutes=15)) is None
    assert AddressThrottle(0, timedelta(minutes=15)).blocked_until("10.0.0.1", now) is None
