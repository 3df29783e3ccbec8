"""The push path: decides when a pass should run early, because the server has just announced
new mail in the inbox.

`IdleWatcher` holds one IMAP IDLE (RFC 2177) on the inbox with aioimaplib, in a daemon
thread with its own asyncio loop, and calls `on_new_mail()` on an untagged `EXISTS` (or a
non-zero `RECENT`), and once after every (re)connection, since mail may have arrived
while it was away. It reads no message and decides nothing about one: the scheduled poll
still does all the work, and stays the safety net when IDLE is down.

    renew      each IDLE is ended (DONE) and re-issued every `renew_seconds` (25 min), inside
               the 29 minutes after which servers may drop an idle client; a connection that
               does not answer DONE within `timeout_seconds` is treated as dropped
    sign in    signed in with an OAuth2 token, the session is ended (DONE, LOGOUT) when the
               token is due for renewal and opened again with the new one at once, since
               Exchange ends a session whose token has expired
    reconnect  a drop, a BYE, a timeout or a protocol error is logged (`idle_disconnected`)
               and retried after 1 s, 2 s, 4 s ... at most `reconnect_max_seconds`; a refused
               login is logged at ERROR (`idle_login_refused`) and retried at the maximum
    stop       `stop()` wakes the loop thread-safely; an IDLE in progress is ended with DONE
               and LOGOUT (each bounded to 2 s) and the thread is joined

`on_state(state, error)` hears "connected", "disconnected", "login_refused", "unsupported"
(the server has no IDLE: the watcher ends, the poll carries on) and "stopped".
Both callbacks run on the watcher's thread: they should return quickly (wake the
scheduler, do not run a pass in them); whatever they raise is logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aioimaplib

from mailbot.config import MailboxSettings
from mailbot.errors import ConfigError, MailboxLoginError, describe
from mailbot.logs import event
from mailbot.mailbox import signin

log = logging.getLogger(__name__)

T = TypeVar("T")

# RFC 2177: a server may log out a client idle for 30 minutes; re-issue well before 29.
RENEW_SECONDS = 25 * 60
# A connection that stayed up this long was healthy: the next drop retries after 1 s again.
# Shorter ones keep doubling the wait, so a server that accepts then drops is not hammered.
HEALTHY_SESSION_SECONDS = 60.0
# Each polite step of shutting down (DONE, LOGOUT) waits at most this long.
SHUTDOWN_STEP_SECONDS = 2.0
# TCP keepalive on the idle socket: a NAT or firewall that silently forgets the connection
# is noticed in about two minutes instead of at the next renewal.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 20, 3

_NEW_MAIL = re.compile(rb"^\s*(\d+) (EXISTS|RECENT)\b")

OnNewMail = Callable[[], None]
OnState = Callable[[str, str | None], None]


class _LoginRefused(Exception):
    """The server (or our password source) refused us: a person has to fix it."""


class _Unsupported(Exception):
    """The server does not offer IDLE: no amount of retrying will change that."""


class _Dropped(Exception):
    """The connection went away under us."""


class _Stopping(Exception):
    """stop() was called while a step was in progress."""


class _SignInAgain(Exception):
    """The session's access token is due for renewal: reconnect with a new one now."""


class IdleWatcher:
    """Holds an IMAP IDLE on the inbox in a background thread (its own asyncio loop) and
    calls `on_new_mail()` when the server announces new messages (EXISTS / RECENT
    responses)."""

    def __init__(
        self,
        settings: MailboxSettings,
        folder: str,
        on_new_mail: OnNewMail,
        *,
        renew_seconds: float = RENEW_SECONDS,
        reconnect_max_seconds: float = 60.0,
        on_state: OnState | None = None,
    ) -> None:
        if renew_seconds <= 0:
            raise ValueError("renew_seconds must be positive")
        self.settings = settings
        self.folder = folder
        self.on_new_mail = on_new_mail
        self.on_state = on_state
        self.renew_seconds = float(renew_seconds)
        self.reconnect_max_seconds = max(1.0, float(reconnect_max_seconds))
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # set by stop(), from any thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None  # the loop's own view of _stopping
        self._connected = False
        self._connected_at = 0.0
        self._sign_in_again_at: float | None = None  # time.time(); None with a password

    @property
    def connected(self) -> bool:
        """True while an IDLE session is established (logged in, folder selected)."""
        return self._connected

    def start(self) -> None:
        """Start the watcher's daemon thread and return at once (a second call does nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mailbot-idle", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        """End IDLE (DONE), log out and join the thread; safe to call twice, or from a
        callback (which then does not wait for its own thread)."""
        self._stopping.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has already closed: the thread is ending
                pass
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            event(log, logging.WARNING, "idle_stop_timed_out", waited_seconds=timeout)

    # The thread and its loop.

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - nothing may escape the thread
            event(log, logging.ERROR, "idle_crashed", error=describe(exc))
            log.debug("idle crash traceback", exc_info=True)
        finally:
            self._connected = False

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # stop() sets _stopping before it looks at _loop: if it saw no loop, we see the flag.
        if self._stopping.is_set():
            return
        delay = 1.0
        while not self._stop.is_set():
            try:
                await self._session()
                break  # a session returns only when asked to stop
            except _Stopping:
                break
            except _SignInAgain:
                event(log, logging.INFO, "idle_signing_in_again", reason="token renewal")
                wait = 0.0
            except _Unsupported as exc:
                event(log, logging.ERROR, "idle_unsupported", error=str(exc),
                      fallback="scheduled poll only")
                self._tell_state("unsupported", str(exc))
                break
            except _LoginRefused as exc:
                wait = self.reconnect_max_seconds
                event(log, logging.ERROR, "idle_login_refused", error=str(exc),
                      retry_in_seconds=wait)
                self._tell_state("login_refused", str(exc))
            except Exception as exc:  # noqa: BLE001 - drops, timeouts, protocol errors: retried
                if self._connected_at and (
                    time.monotonic() - self._connected_at >= HEALTHY_SESSION_SECONDS
                ):
                    delay = 1.0
                wait, delay = delay, min(delay * 2, self.reconnect_max_seconds)
                error = describe(exc)
                event(log, logging.WARNING, "idle_disconnected", host=self.settings.host,
                      port=self.settings.port, error=error, retry_in_seconds=wait)
                log.debug("idle disconnect detail", exc_info=True)
                self._tell_state("disconnected", error)
            if await self._stopped_within(wait):
                break
        event(log, logging.INFO, "idle_stopped")
        self._tell_state("stopped", None)

    async def _stopped_within(self, seconds: float) -> bool:
        if self._stop is None:
            raise RuntimeError("the IDLE watcher was not started")
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # One connection, from greeting to logout.

    async def _session(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[BaseException | None] = loop.create_future()

        def connection_lost(exc: BaseException | None) -> None:
            if not lost.done():
                lost.set_result(exc)

        self._connected_at = 0.0
        client = self._client()
        client.protocol.conn_lost_cb = connection_lost
        try:
            await self._race(client.wait_hello_from_server(), lost)
            _keep_alive(client)
            if settings.security == "starttls":
                await self._race(self._starttls(client), lost)
            try:
                sign_in = signin.for_mailbox(settings)
                await self._race(sign_in.imap_async(client), lost)
            except (ConfigError, MailboxLoginError) as exc:
                raise _LoginRefused(str(exc)) from exc
            self._sign_in_again_at = sign_in.valid_until  # None: a password lasts
            if not client.has_capability("IDLE"):
                await self._race(client.protocol.capability(), lost)
                if not client.has_capability("IDLE"):
                    raise _Unsupported(
                        f"{settings.host}:{settings.port} does not offer IMAP IDLE"
                    )
            response = await self._race(client.select(self.folder), lost)
            if response.result != "OK":
                raise _Dropped(f"cannot select {self.folder!r}: {_text(response.lines[-1:])}")
            await self._idle_until_stopped(client, lost)
        finally:
            await self._close(client, lost)
            self._connected = False

    def _client(self) -> aioimaplib.IMAP4:
        settings = self.settings
        if settings.security == "ssl":
            return aioimaplib.IMAP4_SSL(
                settings.host, settings.port, timeout=settings.timeout_seconds,
                ssl_context=ssl.create_default_context(),
            )
        return aioimaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout_seconds)

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        """Upgrade the plain connection (aioimaplib 2.x has no STARTTLS of its own)."""
        protocol = client.protocol
        if not client.has_capability("STARTTLS"):
            raise _Dropped(f"{self.settings.host}:{self.settings.port} does not offer STARTTLS")
        starttls = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(
            protocol.execute(starttls), self.settings.timeout_seconds
        )
        if response.result != "OK":
            raise _Dropped(f"STARTTLS refused: {_text(response.lines[-1:])}")
        loop = asyncio.get_running_loop()
        protocol.transport = await asyncio.wait_for(
            loop.start_tls(
                protocol.transport, protocol, ssl.create_default_context(),
                server_hostname=self.settings.host,
            ),
            self.settings.timeout_seconds,
        )
        # RFC 3501 6.2.1: what the server offered before TLS no longer counts.
        await asyncio.wait_for(protocol.capability(), self.settings.timeout_seconds)

    async def _idle_until_stopped(
        self, client: aioimaplib.IMAP4, lost: asyncio.Future[BaseException | None]
    ) -> None:
        timeout = self.settings.timeout_seconds
        first = True
        while True:
            idle = await self._race(
                asyncio.wait_for(client.idle_start(timeout=self._idle_period()), timeout), lost
            )
            command = client.protocol.pending_sync_command
            if first:
                first = False
                self._connected, self._connected_at = True, time.monotonic()
                event(log, logging.INFO, "idle_connected", host=self.settings.host,
                      port=self.settings.port, folder=self.folder)
                self._tell_state("connected", None)
                self._new_mail()  # whatever arrived while we were away
            else:
                event(log, logging.DEBUG, "idle_renewed", folder=self.folder)

            while (lines := await self._next_push(client, idle, lost)) is not None:
                self._check_push(lines)

            if client.has_pending_idle():
                client.idle_done()
            response = await self._race(asyncio.wait_for(asyncio.shield(idle), timeout), lost)
            if response.result != "OK":
                raise _Dropped(f"IDLE ended with {response.result} {_text(response.lines[-1:])}")
            # Lines that came in the same packet as the end of IDLE are never queued.
            leftover = list(getattr(command, "buffer", []) or [])
            while not client.protocol.idle_queue.empty():
                pushed = client.protocol.idle_queue.get_nowait()
                if pushed != aioimaplib.STOP_WAIT_SERVER_PUSH:
                    leftover.extend(pushed)
            self._check_push(leftover)
            if self._sign_in_again_at is not None and time.time() >= self._sign_in_again_at:
                raise _SignInAgain

    def _idle_period(self) -> float:
        """How long the next IDLE lasts: `renew_seconds`, or until the token is due."""
        if self._sign_in_again_at is None:
            return self.renew_seconds
        return max(1.0, min(self.renew_seconds, self._sign_in_again_at - time.time()))

    async def _next_push(
        self,
        client: aioimaplib.IMAP4,
        idle: asyncio.Future[Any],
        lost: asyncio.Future[BaseException | None],
    ) -> list[bytes] | None:
        """The next lines the server pushed, or None when this IDLE is over (time to renew,
        or the server ended it)."""
        push = asyncio.ensure_future(
            client.wait_server_push(timeout=self.renew_seconds + self.settings.timeout_seconds)
        )
        try:
            await self._wait_first(push, idle, lost)
        finally:
            if not push.done():
                push.cancel()
        if push.done() and not push.cancelled():
            try:
                lines = push.result()
            except TimeoutError:
                return None
            return None if lines == aioimaplib.STOP_WAIT_SERVER_PUSH else list(lines)
        self._raise_if_over(lost)
        return None  # the server ended IDLE on its own: renew

    def _check_push(self, lines: list[bytes]) -> None:
        new_mail = False
        for line in lines:
            if not isinstance(line, bytes | bytearray):
                continue
            if line.startswith(b"BYE"):
                if new_mail:
                    self._new_mail()
                raise _Dropped(f"server said {_text([line])}")
            match = _NEW_MAIL.match(line)
            if match and (match.group(2) == b"EXISTS" or int(match.group(1)) > 0):
                new_mail = True
        if new_mail:
            event(log, logging.DEBUG, "idle_new_mail", folder=self.folder)
            self._new_mail()

    async def _close(
        self, client: aioimaplib.IMAP4, lost: asyncio.Future[BaseException | None]
    ) -> None:
        """End IDLE and log out politely when the connection is still there, then close it."""
        protocol = client.protocol
        try:
            if not lost.done():
                if client.has_pending_idle():
                    client.idle_done()  # LOGOUT below waits for IDLE's tagged OK
                if client.get_state() in (aioimaplib.NONAUTH, aioimaplib.AUTH,
                                          aioimaplib.SELECTED):
                    await asyncio.wait_for(client.logout(), SHUTDOWN_STEP_SECONDS)
        except Exception as exc:  # noqa: BLE001 - closing anyway
            log.debug("idle logout failed: %s", describe(exc))
        finally:
            if protocol.transport is not None:
                protocol.transport.close()
            connecting = getattr(client, "_client_task", None)
            if isinstance(connecting, asyncio.Future):
                if not connecting.done():
                    connecting.cancel()
                elif not connecting.cancelled():
                    connecting.exception()  # retrieved: no "never retrieved" noise

    # Waiting on the network while staying stoppable.

    async def _race(self, step: Awaitable[T], lost: asyncio.Future[BaseException | None]) -> T:
        """Await one step, giving up at once if the connection drops or stop() is called."""
        task = asyncio.ensure_future(step)
        try:
            await self._wait_first(task, lost)
        finally:
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        self._raise_if_over(lost)
        raise _Dropped("step cancelled")

    async def _wait_first(self, *futures: asyncio.Future[Any]) -> None:
        if self._stop is None:
            raise RuntimeError("the IDLE watcher was not started")
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({stopped, *futures}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()

    def _raise_if_over(self, lost: asyncio.Future[BaseException | None]) -> None:
        if self._stop is None:
            raise RuntimeError("the IDLE watcher was not started")
        if self._stop.is_set():
            raise _Stopping
        if lost.done():
            exc = lost.result()
            raise _Dropped(
                f"connection lost ({describe(exc)})" if exc else "connection closed by server"
            )

    # Callbacks: never allowed to break the watcher.

    def _new_mail(self) -> None:
        try:
            self.on_new_mail()
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "idle_callback_failed", callback="on_new_mail",
                  error=describe(exc))
            log.debug("on_new_mail traceback", exc_info=True)

    def _tell_state(self, state: str, error: str | None) -> None:
        if self.on_state is None:
            return
        try:
            self.on_state(state, error)
        except Exception as exc:  # noqa: BLE001
            event(log, logging.ERROR, "idle_callback_failed", callback="on_state",
                  error=describe(exc))


def _keep_alive(client: aioimaplib.IMAP4) -> None:
    transport = client.protocol.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE),
                            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                            ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        pass  # keepalive is a nicety; renewal still notices a dead connection


def _text(lines: list[Any]) -> str:
    """Server status text for a log line (never message data: IDLE fetches none)."""
    parts = [
        bytes(line).decode("utf-8", "replace") for line in lines
        if isinstance(line, bytes | bytearray)
    ]
    return " ".join(parts)[:200]
