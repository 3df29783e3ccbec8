"""Throwaway local mail servers for the demo, the tests and the benchmarks.

A real Dovecot (Debian's `dovecot-imapd`) on a free loopback port with its own config,
mail store and runtime directory, and a real SMTP server (aiosmtpd) that keeps what it
receives. Nothing here is used by the daemon in production.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

DOVECOT_BINARY = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def dovecot_available() -> bool:
    return Path(DOVECOT_BINARY).exists()


@dataclass
class Dovecot:
    """A Dovecot IMAP server with one user, started in the foreground under our control."""

    root: Path
    username: str = "safercustody@prison.example"
    password: str = "demo-password"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    # Also sign in with OAuth2 (XOAUTH2, OAUTHBEARER): Dovecot's oauth2 passdb asks this
    # RFC 7662 endpoint (mailbot/devtools/tokenserver.py) whether each token is good.
    oauth2_introspection_url: str = ""
    # Folders that exist from the start with a SPECIAL-USE flag (RFC 6154), named as a
    # real server names them ({"Sent Items": "\\Sent"} for Exchange); else Drafts and Sent
    # are flagged but made only when first used.
    special_folders: dict[str, str] | None = None

    @classmethod
    def start(cls, root: Path | None = None, port: int | None = None,
              oauth2_introspection_url: str = "",
              special_folders: dict[str, str] | None = None) -> Dovecot:
        root = Path(root or tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        server = cls(root=root, port=port or free_port(),
                     oauth2_introspection_url=oauth2_introspection_url,
                     special_folders=special_folders)
        server._write_config()
        server._spawn()
        return server

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def _write_config(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        me = pwd.getpwuid(os.getuid())
        # As root, Dovecot insists on its unprivileged system users and refuses to store
        # mail as uid 0; as anyone else it runs every process as that user.
        login_user = "dovenull" if os.getuid() == 0 else me.pw_name
        internal_user = "dovecot" if os.getuid() == 0 else me.pw_name
        if os.getuid() == 0:
            me = pwd.getpwnam(internal_user)
        (self.root / "passwd").write_text(f"{self.username}:{{PLAIN}}{self.password}\n")
        os.chown(self.root / "mail", me.pw_uid, me.pw_gid)
        os.chmod(self.root, 0o755)
        mechanisms, oauth2_passdb = "plain login", ""
        if self.oauth2_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            (self.root / "oauth2.conf.ext").write_text(
                "introspection_mode = post\n"
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "username_attribute = email\n"
                "active_attribute = active\n"
                "active_value = true\n"
                "force_introspection = yes\n"
            )
            oauth2_passdb = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.root}/oauth2.conf.ext\n}}\n"
                "auth_failure_delay = 0\n"
            )
        folders = "".join(
            f'  mailbox "{name}" {{\n    special_use = {flag}\n    auto = create\n  }}\n'
            for name, flag in (self.special_folders or {}).items()
        ) or "  mailbox Drafts {\n    special_use = \\Drafts\n  }\n" \
             "  mailbox Sent {\n    special_use = \\Sent\n  }\n"
        self.config_path.write_text(
            f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
info_log_path = {self.root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{self.root}/mail/%u
mail_uid = {me.pw_uid}
mail_gid = {me.pw_gid}
first_valid_uid = 1
first_valid_gid = 1
imap_max_line_length = 1M
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={me.pw_uid} gid={me.pw_gid} home={self.root}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{folders}}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
        )

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [DOVECOT_BINARY, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            log = (self.root / "dovecot.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Dovecot did not start:\n{log}") from None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self._spawn()

    def mailbox(self) -> Any:
        """An imap-tools client logged in as our user (for seeding and checking)."""
        from imap_tools import MailBoxUnencrypted

        box = MailBoxUnencrypted("127.0.0.1", self.port)
        box.login(self.username, self.password)
        return box

    def append(self, raw: bytes, folder: str = "INBOX", internal_date: Any = None) -> None:
        with self.mailbox() as box:
            if not box.folder.exists(folder):
                box.folder.create(folder)
            box.append(raw, folder, dt=internal_date, flag_set=())

    def folder_counts(self, *folders: str) -> dict[str, int]:
        with self.mailbox() as box:
            counts = {}
            for name in folders:
                counts[name] = (
                    box.folder.status(name)["MESSAGES"] if box.folder.exists(name) else 0
                )
            return counts

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SmtpSink:
    """A real SMTP server on loopback that keeps every message it accepts.

    `replies` queues SMTP status lines to answer DATA with (e.g. "451 try later"),
    one per message, before reverting to accepting. `on_data`, if set, is called with
    each message's bytes before it is answered (to make something fail at that moment).
    """

    port: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    on_data: Any = None
    controller: Any = None

    @classmethod
    def start(cls, port: int | None = None) -> SmtpSink:
        from aiosmtpd.controller import Controller

        sink = cls(port=port or free_port())
        sink.controller = Controller(_SinkHandler(sink), hostname="127.0.0.1", port=sink.port)
        sink.controller.start()
        return sink

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def parsed(self) -> list[Any]:
        return [message_from_bytes(m["data"], policy=policy.default) for m in self.messages]


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.sink.on_data is not None:
            self.sink.on_data(bytes(envelope.content))
        if self.sink.replies:
            return self.sink.replies.pop(0)
        self.sink.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": bytes(envelope.content),
            }
        )
        return "250 Message accepted for delivery"


def write_config(
    root: Path,
    imap: Dovecot,
    smtp_port: int,
    *,
    database_url: str | None = None,
    state_dir: Path | None = None,
    extra: str = "",
    mailbox_extra: str = "",
) -> Path:
    """`mailbot.toml` in ROOT for these servers, the IMAP password in a file beside it;
    the database is SQLite in ROOT, and the state is kept in ROOT, unless told otherwise."""
    password_file = root / "imap-password"
    password_file.write_text(imap.password + "\n")
    path = root / "mailbot.toml"
    path.write_text(
        config_text(
            imap_port=imap.port,
            username=imap.username,
            password_file=password_file,
            database_url=database_url or f"sqlite:///{root / 'mailbot.sqlite3'}",
            state_dir=state_dir or root,
            smtp_port=smtp_port,
            extra=extra,
            mailbox_extra=mailbox_extra,
        )
    )
    return path


def config_text(
    *,
    imap_port: int,
    username: str,
    password_file: Path,
    database_url: str,
    state_dir: Path,
    smtp_port: int = 2525,
    extra: str = "",
    mailbox_extra: str = "",
) -> str:
    """A mailbot configuration for local servers (demo, tests, benchmarks)."""
    return f"""# Local servers; see config/mailbot.example.toml for every key.
[prison]
name = "HMP Exampletown"
hotline_phone = "01234 567890"
duty_phone = "01234 567891"
portal_url = "https://portal.example.org/hmp-exampletown"
family_service = "Example Families Service"
governor_address = "Governor, HMP Exampletown"

[mailbox]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{username}"
password_file = "{password_file}"
connect_attempts = 2
{mailbox_extra or "poll_interval_seconds = 1"}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_address = "safercustody.exampletown@prison.example"

[database]
url = "{database_url}"

[state]
directory = "{state_dir}"
{extra}
"""


POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def throwaway_postgres_database(prefix: str = "mailbot") -> Iterator[str]:
    """A new, empty database on the local PostgreSQL (trust auth), dropped afterwards;
    yields its SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
