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
        self.client.sendmail(self.settings.from_address, [recipient], raw)

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
