"""SMTP: one connection to the mail server, as `[smtp]` describes it, and what its errors mean.

It decides nothing about what is sent or when; the outbox (mailbot/replies/outbox.py) does.
"""

from __future__ import annotations

import smtplib
import socket
import ssl

from mailbot.config import Config
from mailbot.errors import SignInError
from mailbot.mailbox import signin


class SmtpConnection:
    def __init__(self, config: Config) -> None:
        settings = self.settings = config.smtp
        timeout = settings.timeout_seconds
        if settings.security == "ssl":
            self.client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            self.client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
            if settings.security == "starttls":
                self.client.starttls(context=ssl.create_default_context())
        signin.smtp_login(self.client, config)  # password or OAuth2, as [smtp] says

    def send(self, raw: bytes, recipient: str) -> None:
        self.offer(recipient)
        self.hand_over(raw)

    def offer(self, recipient: str) -> None:
        """MAIL FROM and RCPT TO. The server may refuse here, and nothing is delivered
        yet: the outbox records that the data is going only once both are accepted."""
        sender = self.settings.from_address
        self.client.ehlo_or_helo_if_needed()
        code, reply = self.client.mail(sender)
        if code != 250:
            self._reset()
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = self.client.rcpt(recipient)
        if code not in (250, 251):
            self._reset()
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})

    def hand_over(self, raw: bytes) -> None:
        """DATA: returns once the server has taken responsibility for the message (250);
        raises SMTPDataError when it refuses it, and any other error leaves it unknown."""
        code, reply = self.client.data(raw)
        if code != 250:
            self._reset()
            raise smtplib.SMTPDataError(code, reply)

    def _reset(self) -> None:
        try:
            self.client.rset()
        except (smtplib.SMTPException, OSError):
            pass  # the connection is closed by the caller after an error anyway

    def close(self) -> None:
        try:
            self.client.quit()
        except (smtplib.SMTPException, OSError):
            self.client.close()


# Lost connections and timeouts: the server may be back on a later pass.
TEMPORARY_ERRORS = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError,
                    socket.timeout)
# Every failure of one send, temporary or not; a failed OAuth2 sign-in is our
# configuration's (no reply code: the email is kept and tried again, the outage noted).
SMTP_ERRORS = (smtplib.SMTPException, SignInError, *TEMPORARY_ERRORS)


def smtp_code(exc: Exception) -> int | None:
    """The server's reply code for a failed send; None when it never answered."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return codes[0] if codes else None
    return getattr(exc, "smtp_code", None)
