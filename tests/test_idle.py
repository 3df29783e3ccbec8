"""The IDLE watcher against a real Dovecot: new mail is announced within seconds, IDLE is
renewed without reconnecting, a dropped server is reconnected to, and stop() is prompt."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbot.config import MailboxSettings, from_dict
from mailbot.devtools.devservers import Dovecot, free_port
from mailbot.mailbox.idle import IdleWatcher

pytestmark = pytest.mark.servers


def new_mail(number: int = 1) -> bytes:
    return (
        f"From: Sam Sample <sam.sample@example.net>\r\n"
        f"To: safercustody.exampletown@prison.example\r\n"
        f"Subject: my brother\r\n"
        f"Message-ID: <idle-{number}-{time.monotonic_ns()}@example.net>\r\n\r\n"
        f"Please check on him.\r\n"
    ).encode()


def mailbox_settings(
    server: Dovecot, tmp_path: Path, *, password: str | None = None, **overrides: object
) -> MailboxSettings:
    password_file = tmp_path / "imap-password"
    password_file.write_text((server.password if password is None else password) + "\n")
    mailbox = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": server.username,
        "password_file": str(password_file),
        "timeout_seconds": 5,
        **overrides,
    }
    return from_dict(
        {
            "prison": {"name": "HMP Exampletown"},
            "mailbox": mailbox,
            "smtp": {"host": "127.0.0.1", "from_address": "safercustody@prison.example"},
            "state": {"directory": str(tmp_path)},
        }
    ).mailbox


class Recorder:
    """Counts on_new_mail calls and keeps on_state calls, waitable from the test thread."""

    def __init__(self) -> None:
        self.calls = 0
        self.states: list[tuple[str, str | None]] = []
        self.changed = threading.Condition()

    def on_new_mail(self) -> None:
        with self.changed:
            self.calls += 1
            self.changed.notify_all()

    def on_state(self, state: str, error: str | None) -> None:
        with self.changed:
            self.states.append((state, error))
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(condition, timeout)

    def state_names(self) -> list[str]:
        with self.changed:
            return [name for name, _ in self.states]


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., tuple[IdleWatcher, Recorder]]]:
    """Start a watcher on a server's inbox (waiting for its first catch-up call when it
    is expected to connect); every watcher is stopped after the test."""
    watchers: list[IdleWatcher] = []

    def start(
        settings: MailboxSettings, *, connect: bool = True, **options: object
    ) -> tuple[IdleWatcher, Recorder]:
        recorder = Recorder()
        watcher = IdleWatcher(
            settings, "INBOX", recorder.on_new_mail, on_state=recorder.on_state,
            **options,  # type: ignore[arg-type]
        )
        watchers.append(watcher)
        watcher.start()
        if connect:
            assert recorder.wait_for(lambda: recorder.calls >= 1, 5), recorder.states
            assert watcher.connected
        return watcher, recorder

    yield start
    for watcher in watchers:
        watcher.stop()


def test_new_mail_is_announced_within_seconds(dovecot, tmp_path, watch):
    watcher, seen = watch(mailbox_settings(dovecot, tmp_path))
    assert seen.state_names() == ["connected"]
    assert seen.calls == 1  # the catch-up call after connecting

    started = time.monotonic()
    dovecot.append(new_mail())
    assert seen.wait_for(lambda: seen.calls >= 2, 5), "no on_new_mail within 5 s"
    assert time.monotonic() - started < 5


def test_idle_is_renewed_on_the_same_connection(dovecot, tmp_path, watch, caplog):
    caplog.set_level(logging.DEBUG, logger="mailbot.mailbox.idle")
    watcher, seen = watch(mailbox_settings(dovecot, tmp_path), renew_seconds=1)
    time.sleep(3)

    dovecot.append(new_mail())
    assert seen.wait_for(lambda: seen.calls >= 2, 5), "no on_new_mail after renewals"
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("idle_renewed") >= 2
    assert "idle_disconnected" not in events
    assert seen.state_names() == ["connected"]
    assert watcher.connected


def imap_sessions(server: Dovecot) -> list[int]:
    """Process ids of the `imap` processes serving clients of this Dovecot."""
    assert server.process is not None
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text[text.index("(") + 1:].partition(") ")
        if name == "imap" and int(rest.split()[1]) == server.process.pid:
            pids.append(int(stat.parent.name))
    return pids


def restart_dropping_sessions(server: Dovecot, how: signal.Signals) -> None:
    """Restart the server on the same port, dropping every session as a real restart would.

    `Dovecot.restart()` alone leaves the running `imap` processes serving their clients
    as orphans, so a connected client would never notice."""
    sessions = imap_sessions(server)
    assert sessions, "the watcher has no session on this server"
    server.stop()
    for pid in sessions:
        try:
            os.kill(pid, how)
        except ProcessLookupError:
            pass
    server.restart()  # stop() is a no-op now: this starts it again on the same port


@pytest.mark.parametrize(
    "how", [signal.SIGTERM, signal.SIGKILL], ids=["server-says-bye", "connection-just-closes"]
)
def test_reconnects_after_the_server_restarts(dovecot, tmp_path, watch, how):
    watcher, seen = watch(mailbox_settings(dovecot, tmp_path))

    restart_dropping_sessions(dovecot, how)
    assert seen.wait_for(lambda: seen.state_names().count("connected") == 2, 10), seen.states
    names = seen.state_names()
    assert names[0] == "connected" and names[-1] == "connected"
    assert "disconnected" in names[1:-1]
    assert seen.wait_for(lambda: seen.calls >= 2, 5)  # the catch-up after reconnecting

    calls = seen.calls
    dovecot.append(new_mail())
    assert seen.wait_for(lambda: seen.calls > calls, 5), "no on_new_mail after reconnecting"
    assert watcher.connected


def test_stop_while_idling_returns_promptly_and_twice(dovecot, tmp_path, watch):
    watcher, seen = watch(mailbox_settings(dovecot, tmp_path))

    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 3
    assert not watcher.connected
    assert seen.state_names()[-1] == "stopped"
    watcher.stop()  # a second call is harmless
    assert seen.state_names().count("stopped") == 1
    log = dovecot.root / "dovecot.log"
    assert seen.wait_for(lambda: "Logged out" in log.read_text(), 3), "no LOGOUT"


def test_stop_while_waiting_to_reconnect_returns_promptly(tmp_path, watch):
    nothing_listens = Dovecot(root=tmp_path, port=free_port())
    watcher, seen = watch(
        mailbox_settings(nothing_listens, tmp_path), connect=False, reconnect_max_seconds=60
    )
    assert seen.wait_for(lambda: "disconnected" in seen.state_names(), 5)
    assert "ConnectionRefusedError" in (seen.states[0][1] or "")

    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 3
    assert seen.calls == 0


def test_refused_login_is_logged_as_an_error_and_retried(dovecot, tmp_path, watch, caplog):
    caplog.set_level(logging.INFO, logger="mailbot.mailbox.idle")
    watcher, seen = watch(
        mailbox_settings(dovecot, tmp_path, password="wrong"), connect=False,
        reconnect_max_seconds=60,
    )
    assert seen.wait_for(lambda: "login_refused" in seen.state_names(), 10), seen.states
    refused = [r for r in caplog.records if getattr(r, "event", None) == "idle_login_refused"]
    assert refused and refused[0].levelno == logging.ERROR
    assert "wrong" not in caplog.text  # the password itself is never logged
    assert refused[0].fields["retry_in_seconds"] == 60
    assert not watcher.connected and seen.calls == 0

    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 3


def test_a_failing_callback_does_not_stop_the_watcher(dovecot, tmp_path, watch, caplog):
    caplog.set_level(logging.INFO, logger="mailbot.mailbox.idle")
    calls: list[float] = []
    notified = threading.Event()

    def on_new_mail() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        notified.set()

    watcher = IdleWatcher(mailbox_settings(dovecot, tmp_path), "INBOX", on_new_mail)
    watcher.start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
        dovecot.append(new_mail())
        assert notified.wait(5)
        assert watcher.connected
        failed = [r for r in caplog.records if getattr(r, "event", None) == "idle_callback_failed"]
        assert failed and "database is locked" in failed[0].fields["error"]
    finally:
        watcher.stop()


# TLS: the same server with a self-signed certificate for 127.0.0.1, trusted through
# SSL_CERT_FILE, on its implicit-TLS port (ssl) and its plain port (starttls).


@pytest.fixture
def tls_dovecot(dovecot: Dovecot) -> Iterator[tuple[Dovecot, int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = dovecot.root / "cert.pem", dovecot.root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    imaps_port = free_port()
    config = dovecot.config_path.read_text()
    config = config.replace("ssl = no", f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}")
    config = config.replace("inet_listener imaps {\n    port = 0", (
        f"inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}"
    ))
    dovecot.config_path.write_text(config)
    dovecot.restart()
    yield dovecot, imaps_port, cert


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_connections_are_verified_and_watched(
    tls_dovecot, tmp_path, watch, monkeypatch, security
):
    server, imaps_port, cert = tls_dovecot
    port = imaps_port if security == "ssl" else server.port
    settings = mailbox_settings(server, tmp_path, security=security, port=port)

    untrusted, refused = watch(settings, connect=False)
    assert refused.wait_for(lambda: bool(refused.states), 5)
    assert "CERTIFICATE_VERIFY_FAILED" in (refused.states[0][1] or ""), refused.states
    untrusted.stop()

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    watcher, seen = watch(settings)
    dovecot_calls = seen.calls
    server.append(new_mail())
    assert seen.wait_for(lambda: seen.calls > dovecot_calls, 5)
