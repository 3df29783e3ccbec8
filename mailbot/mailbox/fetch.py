"""The fetch stage: takes messages out of the inbox by UID, and moves them once recorded.

It decides nothing about what a message is. It connects (retrying with backoff), makes
sure the processed and quarantine folders exist, reads the inbox in batches bounded by
count and bytes, and moves each message only when the caller says it is committed.

It also knows which folder the server means by Drafts and Sent (and Junk and Trash):
the one it flags with that SPECIAL-USE attribute (RFC 6154) in its LIST, read once per
connection, so Exchange's "Sent Items" and Gmail's "[Gmail]/Sent Mail" are used without
being configured; a folder named in the configuration always wins.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from imap_tools import AND, H, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxFolderCreateError
from imap_tools.utils import encode_folder
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from mailbot.config import MailboxSettings
from mailbot.errors import MailboxError, describe
from mailbot.logs import event
from mailbot.mailbox import signin

log = logging.getLogger(__name__)

# How many bytes one FETCH may bring back: keeps memory flat whatever the batch holds.
FETCH_BYTES_PER_REQUEST = 32 * 1024 * 1024

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')

# mailbot's use of a folder, the SPECIAL-USE attribute (RFC 6154) the server gives that
# kind of folder, and the name used when the server flags none.
SPECIAL_USE = {"sent": "\\Sent", "drafts": "\\Drafts", "junk": "\\Junk", "trash": "\\Trash"}
PLAIN_NAME = {"sent": "Sent", "drafts": "Drafts", "junk": "Junk", "trash": "Trash"}

# Errors that mean the connection, not our credentials, failed: worth retrying.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    socket.timeout,
    ssl.SSLError,
    imaplib.IMAP4.abort,
    EOFError,
)


@dataclass
class FetchedMessage:
    uid: int
    size: int
    internal_date: datetime | None
    raw: bytes  # the whole message, or only its header when too_large
    too_large: bool = False


def parse_internaldate(value: bytes | str) -> datetime | None:
    """`17-Jul-1996 02:44:25 -0700` -> aware datetime (None when unreadable)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


class Mailbox:
    """One logged-in IMAP session on the safer custody mailbox."""

    def __init__(self, settings: MailboxSettings, client: MailBox) -> None:
        self.settings = settings
        self.client = client
        self.capabilities = _capabilities_after_login(client)
        self._special_use: dict[str, str] | None = None

    @classmethod
    def connect(cls, settings: MailboxSettings, sleep=time.sleep) -> Mailbox:  # type: ignore[no-untyped-def]
        """Log in, retrying connection failures with exponential backoff (1 s, 2 s, 4 s...
        at most 60 s; `[mailbox] connect_attempts` tries in all).

        A refused login is not retried: the password will not fix itself, and repeated
        failures can lock the account. How to sign in (password or OAuth2) is signin's."""
        sign_in = signin.for_mailbox(settings)
        attempts = max(1, settings.connect_attempts)

        def log_failure(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            event(log, logging.WARNING, "mailbox_connect_failed", host=settings.host,
                  port=settings.port, attempt=state.attempt_number, of=attempts,
                  error=describe(exc))

        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=1, min=1, max=60),
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            sleep=sleep,
            before_sleep=log_failure,
            reraise=True,
        )
        stage = {"login": False}

        def attempt() -> MailBox:
            stage["login"] = False
            client = _open(settings)
            stage["login"] = True
            try:
                sign_in.imap(client)
            except BaseException:
                _close_quietly(client)
                raise
            return client

        try:
            return cls(settings, retrying(attempt))
        except TRANSIENT_ERRORS as exc:
            if not stage["login"]:
                event(log, logging.WARNING, "mailbox_connect_failed", host=settings.host,
                      port=settings.port, attempt=attempts, of=attempts, error=describe(exc))
                raise MailboxError(
                    f"cannot reach the mailbox at {settings.host}:{settings.port} "
                    f"({describe(exc)}); check [mailbox] host, port and "
                    f"security, and that the server is up"
                ) from exc
            raise MailboxError(
                f"the mailbox at {settings.host}:{settings.port} dropped the connection "
                f"during login ({exc.__class__.__name__})"
            ) from exc

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        _close_quietly(self.client)

    def special_use(self) -> dict[str, str]:
        """The folders the server flags with a SPECIAL-USE attribute, by use ("sent":
        "Sent Items"): one LIST per connection, whoever asks first. A server that flags
        two folders alike (it should not) gets its first."""
        if self._special_use is None:
            found: dict[str, str] = {}
            wanted = {flag.lower(): use for use, flag in SPECIAL_USE.items()}
            for folder in self.client.folder.list():
                for flag in folder.flags:
                    use = wanted.get(flag.lower())
                    if use is not None:
                        found.setdefault(use, folder.name)
            self._special_use = found
            event(log, logging.DEBUG, "mailbox_special_use_folders",
                  **{use: found.get(use, "-") for use in SPECIAL_USE})
        return self._special_use

    def folder_for(self, use: str, configured: str | None = None) -> str:
        """The folder to use for Drafts, Sent, Junk or Trash: the configured name when
        there is one, else the server's SPECIAL-USE folder, else the plain name."""
        if configured:
            return configured
        return self.special_use().get(use, PLAIN_NAME[use])

    @property
    def sent_folder(self) -> str:
        """Where copies of what mailbot sends are filed, and staff responses are read."""
        return self.folder_for("sent", self.settings.sent_folder)

    def ensure_folders(self, *names: str) -> list[str]:
        """Create each folder that is missing; the ones created. A refusal raises the
        server's words, the folder and what to do, in one line."""
        created = []
        for name in names:
            if self.client.folder.exists(name):
                continue
            try:
                self.client.folder.create(name)
            except MailboxFolderCreateError as exc:
                # Another connection (ours or a person's) may have made it meanwhile.
                if not self.client.folder.exists(name):
                    raise MailboxError(
                        f"the mailbox will not let mailbot create the folder {name!r} "
                        f"({_reply(exc)}); create it by hand, or name a folder that exists "
                        f"(`mailbot mailbox check` lists them)"
                    ) from exc
                continue
            event(log, logging.INFO, "mailbox_folder_created", folder=name)
            created.append(name)
            self._special_use = None  # the server may flag what it just made
        return created

    def select(self, folder: str) -> int | None:
        """Select a folder read-write and return its UIDVALIDITY."""
        self.client.folder.set(folder)
        status = self.client.folder.status(folder, ["UIDVALIDITY"])
        value = status.get("UIDVALIDITY")
        return int(value) if value is not None else None

    def uids(self) -> list[int]:
        return sorted(int(uid) for uid in self.client.uids("ALL"))

    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMessage]:
        """Yield the given messages of the selected folder, a bounded request at a time."""
        if not uids:
            return
        sizes = self._sizes(uids)
        limit = self.settings.max_message_bytes
        large = [uid for uid in uids if sizes.get(uid, 0) > limit]
        normal = [uid for uid in uids if uid in sizes and sizes[uid] <= limit]
        for group in _groups_by_bytes(normal, sizes, FETCH_BYTES_PER_REQUEST):
            yield from self._fetch_parts(group, "BODY.PEEK[]", too_large=False)
        for uid in large:
            yield from self._fetch_parts([uid], "BODY.PEEK[HEADER]", too_large=True)

    def fetch_header_fields(
        self, uids: Sequence[int], *names: str
    ) -> Iterator[FetchedMessage]:
        """Only the named header fields of the given messages (`raw` holds just those
        lines), to decide which messages are worth fetching whole."""
        for start in range(0, len(uids), 1000):
            yield from self._fetch_parts(
                uids[start : start + 1000],
                f"BODY.PEEK[HEADER.FIELDS ({' '.join(names)})]",
                too_large=False,
            )

    def _sizes(self, uids: Sequence[int]) -> dict[int, int]:
        typ, data = self.client.client.uid("FETCH", _uid_set(uids), "(UID RFC822.SIZE)")
        if typ != "OK":
            raise MailboxError(f"FETCH of message sizes failed: {typ} {data!r}")
        sizes: dict[int, int] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid, size = _UID.search(line), _SIZE.search(line)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def _fetch_parts(
        self, uids: Sequence[int], body: str, too_large: bool
    ) -> Iterator[FetchedMessage]:
        typ, data = self.client.client.uid(
            "FETCH", _uid_set(uids), f"(UID RFC822.SIZE INTERNALDATE {body})"
        )
        if typ != "OK":
            raise MailboxError(f"FETCH failed: {typ} {data!r}")
        for item in data:
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            meta, raw = item[0], item[1]
            uid = _UID.search(meta)
            if uid is None:
                continue
            size = _SIZE.search(meta)
            date = _INTERNALDATE.search(meta)
            yield FetchedMessage(
                uid=int(uid.group(1)),
                size=int(size.group(1)) if size else len(raw),
                internal_date=parse_internaldate(date.group(1)) if date else None,
                raw=bytes(raw),
                too_large=too_large,
            )

    def append(self, raw: bytes, folder: str, flags: Sequence[str] = ("\\Seen",)) -> None:
        self.client.append(raw, folder, flag_set=list(flags))

    def uids_with_message_id(self, folder: str, message_id: str) -> list[int]:
        self.client.folder.set(folder)
        return [int(u) for u in self.client.uids(AND(header=H("Message-ID", message_id)))]

    def delete(self, folder: str, uids: Sequence[int]) -> None:
        """Delete exactly these messages from a folder: flag them \\Deleted and expunge
        only their UIDs (RFC 4315), never another message someone flagged."""
        if uids:
            self.client.folder.set(folder)
            self._expunge_exactly(uids)

    def uids_after(self, folder: str, last_uid: int | None) -> tuple[int | None, list[int]]:
        """UIDVALIDITY and the UIDs above `last_uid` in a folder read without emptying."""
        uidvalidity = self.select(folder)
        uids = self.uids()
        return uidvalidity, [u for u in uids if last_uid is None or u > last_uid]

    def move(self, uids: Iterable[int], folder: str) -> None:
        """Move messages of the selected folder to FOLDER: with MOVE (RFC 6851), atomic,
        when the server offers it; else UID COPY, then \\Deleted and UID EXPUNGE of just
        those UIDs. A crash between that copy and the expunge leaves a message in both
        folders; the next pass's `move_recorded` settles such a message in one."""
        uid_list = [str(uid) for uid in uids]
        for start in range(0, len(uid_list), 500):
            chunk = ",".join(uid_list[start : start + 500])
            if "MOVE" in self.capabilities:
                self._command(f"UID MOVE to {folder}", "MOVE", chunk, encode_folder(folder))
            else:
                self._command(f"UID COPY to {folder}", "COPY", chunk, encode_folder(folder))
                self._expunge_exactly([int(u) for u in chunk.split(",")])

    def move_recorded(self, messages: Sequence[tuple[int, str | None]], folder: str) -> None:
        """Move messages already recorded by an earlier pass that died before its move
        finished. Without MOVE (or with an older mailbot), such a pass may have copied a
        message and not removed it: one whose Message-ID FOLDER already holds is only
        removed from here, so each message ends in exactly one place. Rare (only after a
        crash), so a header search each is cheap enough."""
        if not messages:
            return
        current = self.client.folder.get()
        copied, to_move = [], []
        for uid, message_id in messages:
            if message_id and self.uids_with_message_id(folder, message_id):
                copied.append(uid)
            else:
                to_move.append(uid)
        self.client.folder.set(current)
        if copied:
            self._expunge_exactly(copied)
            event(log, logging.WARNING, "copy_already_moved", folder=folder, count=len(copied))
        self.move(to_move, folder)

    def _expunge_exactly(self, uids: Sequence[int]) -> None:
        if "UIDPLUS" not in self.capabilities:
            raise MailboxError(
                f"the mailbox at {self.settings.host} offers neither MOVE nor UIDPLUS, so "
                "messages cannot be moved without risking other people's deleted mail"
            )
        chunk = _uid_set(uids)
        self._command("UID STORE \\Deleted", "STORE", chunk, "+FLAGS.SILENT", r"(\Deleted)")
        self._command("UID EXPUNGE", "EXPUNGE", chunk)

    def _command(self, what: str, command: str, *args: str | bytes) -> None:
        typ, data = self.client.client.uid(command, *args)
        if typ != "OK":
            raise MailboxError(f"{what} failed: {typ} {data!r}")


def _capabilities_after_login(client: MailBox) -> frozenset[str]:
    """What the server offers now that we are logged in. imaplib keeps the list it read
    before login, and servers (Dovecot among them) announce MOVE only after it."""
    typ, data = client.client.capability()
    if typ != "OK" or not data or not isinstance(data[-1], bytes):
        return frozenset(str(c).upper() for c in client.client.capabilities)
    return frozenset(data[-1].decode("ascii", "replace").upper().split())


def _open(settings: MailboxSettings) -> MailBox:
    timeout = settings.timeout_seconds
    if settings.security == "none":
        return MailBoxUnencrypted(settings.host, settings.port, timeout=timeout)
    # Verify the server's certificate (imaplib's own default context does not).
    context = ssl.create_default_context()
    if settings.security == "ssl":
        return MailBox(settings.host, settings.port, timeout=timeout, ssl_context=context)
    return MailBoxStartTls(settings.host, settings.port, timeout=timeout, ssl_context=context)


def _close_quietly(client: MailBox) -> None:
    try:
        client.logout()
    except (ImapToolsError, *TRANSIENT_ERRORS, imaplib.IMAP4.error):
        pass


def _reply(exc: ImapToolsError) -> str:
    """The server's words from a refused command, for a message."""
    result = getattr(exc, "command_result", None)
    data = result[1] if isinstance(result, tuple) and len(result) > 1 else None
    line = data[0] if isinstance(data, list) and data else data
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line or "")
    return " ".join(text.split())[:160] or exc.__class__.__name__


def _uid_set(uids: Iterable[int]) -> str:
    return ",".join(str(uid) for uid in uids)


def _groups_by_bytes(
    uids: Sequence[int], sizes: dict[int, int], max_bytes: int
) -> Iterator[list[int]]:
    group: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if group and total + size > max_bytes:
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group
